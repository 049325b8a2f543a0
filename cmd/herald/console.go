package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
)

// The notification centre page, and the TypeScript SDK's build
// (clients/js, copied here by `go tool task js:build`; a test checks the
// copy is current).
var (
	//go:embed web/centre.html
	centreHTML []byte
	//go:embed web/herald-client.js
	sdkJS []byte
)

// devConsole is herald dev's browser console: a page at / that connects as
// any user, the token endpoint that signs its tokens (/dev/token), and the
// edge's own routes (/ws) so that the page is same-origin with them. It
// lives on its own loopback listener, never on the public one, and signs
// with a secret generated for the run, never an operator's.
type devConsole struct {
	ln     net.Listener
	secret []byte
	apiKey string // a service key for this run: the admin panel publishes with it
}

// openDevConsole listens on addr, which must be loopback, at once, so that
// a bad or taken address fails the start in one line.
func openDevConsole(addr, secret string) (*devConsole, error) {
	if !isLoopback(addr) {
		return nil, fmt.Errorf("%w: --dev-console-listen %q is not loopback: the console signs tokens for any user, so it listens only on 127.0.0.0/8, [::1] or localhost", errUsage, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dev console listener: %w", err)
	}
	if !boundLoopback(ln) {
		ln.Close()
		return nil, fmt.Errorf("%w: --dev-console-listen %q is bound to %s, not loopback", errUsage, addr, ln.Addr())
	}
	return &devConsole{ln: ln, secret: []byte(secret), apiKey: "dev-" + newDevSecret()}, nil
}

// Addr returns the address the console listens on.
func (c *devConsole) Addr() string { return c.ln.Addr().String() }

// Close closes the listener if serve never took it over.
func (c *devConsole) Close() {
	if c != nil {
		_ = c.ln.Close()
	}
}

// serve serves the console beside e until the returned stop is called. A
// nil console serves nothing.
func (c *devConsole) serve(e *wsedge.Edge, public http.Handler, o serverOptions, log *slog.Logger) (stop func()) {
	if c == nil {
		return func() {}
	}
	srv := o.newHTTPServer(c.handler(public), log)
	srv.ConnContext = e.ConnContext
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(e.Listener(c.ln, srv.Handler)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("dev console listener stopped", "err", err)
		}
	}()
	log.Warn("dev console: it signs a token for any user; loopback only", "url", "http://"+c.Addr()+"/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
}

// handler serves the notification centre page, the SDK, the token and API
// key endpoints and, for the rest, the public listener's routes (/ws, /v1/),
// to requests addressed to a loopback host: a web page whose name an
// attacker re-pointed at 127.0.0.1 (DNS rebinding) gets 421.
func (c *devConsole) handler(public http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", public)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(centreHTML)
	})
	mux.HandleFunc("GET /herald-client.js", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(sdkJS)
	})
	mux.HandleFunc("GET /dev/token", c.token)
	mux.HandleFunc("GET /dev/apikey", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(c.apiKey))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "the dev console answers only to localhost and loopback addresses", http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names localhost or a
// loopback address, with or without a port.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return isLoopback(net.JoinHostPort(strings.Trim(host, "[]"), "0"))
}

// token signs an hour's token for ?user= of ?tenant= (default acme) that
// may subscribe to every topic.
func (c *devConsole) token(w http.ResponseWriter, r *http.Request) {
	user, tenant := r.URL.Query().Get("user"), r.URL.Query().Get("tenant")
	if tenant == "" {
		tenant = "acme"
	}
	if !events.ValidID(user) || !events.ValidTenant(tenant) {
		http.Error(w, "user and tenant must be valid ids", http.StatusBadRequest)
		return
	}
	tok, err := auth.Mint(c.secret, auth.Claims{Subject: user, Tenant: tenant, Topics: []string{"*"}}, time.Hour)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(tok))
}
