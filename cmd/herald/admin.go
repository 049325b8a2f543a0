package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminOff is the --admin-listen value that turns the admin listener off.
const adminOff = "off"

// admin adds the admin listener's flags and the HTTP limits of every
// listener of the command.
func (f *flags) admin(addr *string, o *serverOptions) {
	f.String(addr, "admin-listen", "127.0.0.1:9090", `admin listener: /metrics, /healthz, /debug/pprof/ (with the admin token), the edge's rules API ("off": none)`)
	// Not f.String: --help must not print the token as a default; the
	// variable (or a file) is read after parsing, see secrets.go.
	f.StringVar(&o.adminToken, "admin-token", "", "bearer token for /debug/pprof/ and the edge's rules API (GET/PUT /admin/rules) on the admin listener; "+
		"empty: both are off (env "+adminTokenEnv+"; or a file: --admin-token-file, "+adminTokenEnv+"_FILE)")
	f.Bool(&o.pprofWithoutToken, "pprof-without-token", false, "serve /debug/pprof/ without the admin token; refused unless --admin-listen is loopback (127.0.0.0/8, ::1, localhost)")
	f.Bool(&o.metricsRequireToken, "metrics-require-token", false, "/metrics asks for the admin token too (needs --admin-token)")
	f.Duration(&o.idleTimeout, "http-idle-timeout", defaultIdleTimeout, "an idle keep-alive HTTP connection is closed after this (every listener; WebSocket sessions are not affected)")
}

// newRegistry returns a Prometheus registry holding the Go runtime and
// process collectors; a command registers its components' collectors too.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// adminServer is the admin HTTP listener of a long-running command:
// /metrics from a registry, /debug/pprof/ and /healthz. A command adds its
// own routes (the rules API) to Mux; ServeMux allows that at any time.
type adminServer struct {
	Mux  *http.ServeMux
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startAdmin listens on addr at once, so that a taken port fails the
// command's start in one line, and serves in the background until Close.
// health answers /healthz: nil means always healthy; an error makes it 503
// with the error's text. /debug/pprof/ needs o.adminToken (or
// o.pprofWithoutToken on a loopback address) and is absent without it;
// pprof's cmdline endpoint is never served: it shows the command line,
// secrets included. With addr "off" it returns nil, and the methods of a
// nil *adminServer do nothing.
func startAdmin(addr string, o serverOptions, reg *prometheus.Registry, health func(context.Context) error, log *slog.Logger) (*adminServer, error) {
	if addr == adminOff || addr == "" {
		return nil, nil
	}
	if o.pprofWithoutToken && !isLoopback(addr) {
		return nil, fmt.Errorf("%w: --pprof-without-token needs a loopback --admin-listen (127.0.0.0/8, ::1 or localhost), not %q", errUsage, addr)
	}
	if o.metricsRequireToken && o.adminToken == "" {
		return nil, fmt.Errorf("%w: --metrics-require-token needs --admin-token (or %s)", errUsage, adminTokenEnv)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if o.pprofWithoutToken && !boundLoopback(ln) {
		ln.Close()
		return nil, fmt.Errorf("%w: --pprof-without-token: --admin-listen %q is bound to %s, not loopback", errUsage, addr, ln.Addr())
	}
	mux := http.NewServeMux()
	var metrics http.Handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	if o.metricsRequireToken {
		metrics = requireToken(o.adminToken, metrics)
	}
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /debug/pprof/cmdline", http.NotFoundHandler())
	switch {
	case o.pprofWithoutToken:
		mux.Handle("GET /debug/pprof/", pprofHandler())
	case o.adminToken != "":
		mux.Handle("GET /debug/pprof/", requireToken(o.adminToken, pprofHandler()))
	}
	mux.HandleFunc("GET /healthz", healthHandler(health))
	a := &adminServer{Mux: mux, ln: ln, done: make(chan struct{}), srv: o.newHTTPServer(mux, log)}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	return a, nil
}

// pprofHandler serves net/http/pprof's index, named profiles, CPU profile,
// symbols and trace under /debug/pprof/ (cmdline is not among them: the
// index answers it 404, and startAdmin routes it to 404 before any token).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

func healthHandler(health func(context.Context) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if health != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := health(ctx); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	}
}

// Addr returns the address the listener is bound to ("" when off).
func (a *adminServer) Addr() string {
	if a == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Close stops the listener, lets requests in flight finish until ctx ends,
// and waits for the server goroutine. It is safe to call twice.
func (a *adminServer) Close(ctx context.Context) error {
	if a == nil {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	<-a.done
	if err != nil {
		return fmt.Errorf("admin listener shutdown: %w", err)
	}
	return nil
}
