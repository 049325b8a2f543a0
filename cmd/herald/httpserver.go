package main

import (
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// HTTP server limits shared by every listener of a command (public, admin,
// dev console).
const (
	// readHeaderTimeout bounds how long a client may take to send the
	// request line and headers (slowloris).
	readHeaderTimeout = 10 * time.Second
	// maxHeaderBytes bounds the request line and headers; larger requests
	// get 431. net/http allows 4 KiB of slack above it (8 KiB for a
	// keep-alive connection's later requests).
	maxHeaderBytes = 16 << 10
	// defaultIdleTimeout is serverOptions.idleTimeout's default.
	defaultIdleTimeout = 120 * time.Second
)

// serverOptions are the HTTP settings of a long-running command beside the
// admin listener's address: who may read the admin listener, and the
// limits of every HTTP server the command runs.
type serverOptions struct {
	// adminToken guards /debug/pprof/ (and /metrics with
	// metricsRequireToken) on the admin listener, and the edge's rules API.
	// Empty: pprof and the rules API are off.
	adminToken string
	// pprofWithoutToken serves /debug/pprof/ without the token; only on a
	// loopback admin listener.
	pprofWithoutToken bool
	// metricsRequireToken makes /metrics ask for the admin token too.
	metricsRequireToken bool
	// idleTimeout closes a keep-alive connection idle this long; 0 means
	// defaultIdleTimeout. WebSocket sessions are not affected.
	idleTimeout time.Duration
}

// newHTTPServer returns a server for h with the command's limits.
func (o serverOptions) newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	idle := o.idleTimeout
	if idle <= 0 {
		idle = defaultIdleTimeout
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// isLoopback reports whether a listen address binds only loopback: its
// host is "localhost" or an address in 127.0.0.0/8 or ::1. An empty host
// (":8081") binds every interface and is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// boundLoopback reports whether a listener is bound to a loopback address,
// whatever name it was opened with.
func boundLoopback(ln net.Listener) bool {
	a, ok := ln.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// requireToken serves h only to requests that carry
// Authorization: Bearer <token>; the token is compared in constant time.
// An empty token lets nobody through.
func requireToken(token string, h http.Handler) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if len(want) == 0 || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald admin"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <HERALD_ADMIN_TOKEN>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
