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

// admin adds the --admin-listen flag (HERALD_ADMIN_LISTEN).
func (f *flags) admin(p *string) {
	f.String(p, "admin-listen", "127.0.0.1:9090", `admin listener: /metrics, /debug/pprof/, /healthz ("off": none)`)
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
// own routes (admin API, console) to Mux; ServeMux allows that at any time.
type adminServer struct {
	Mux  *http.ServeMux
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startAdmin listens on addr at once, so that a taken port fails the
// command's start in one line, and serves in the background until Close.
// health answers /healthz: nil means always healthy; an error makes it 503
// with the error's text. With addr "off" it returns nil, and the methods
// of a nil *adminServer do nothing.
func startAdmin(addr string, reg *prometheus.Registry, health func(context.Context) error, log *slog.Logger) (*adminServer, error) {
	if addr == adminOff || addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", healthHandler(health))
	a := &adminServer{
		Mux: mux, ln: ln, done: make(chan struct{}),
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	return a, nil
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
