package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/heraldrt/herald/wsedge/auth"
)

// watchReload re-reads ver's key files and re-fetches its JWKS URL on each
// SIGHUP until ctx ends, logging the outcome; a bad key file leaves the keys
// in use as they were. stop ends the watch and then closes ver; call it
// when the edge is done with ver.
//
// The SIGHUP handler stays installed until stop, after ctx has ended too:
// a SIGHUP during the drain is ignored rather than killing the process
// (SIGHUP's default action).
// Other reloads (the API keys) join with hooks.add.
func watchReload(ctx context.Context, ver *auth.Verifier, hooks *reloadHooks, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-hup:
				reloadKeys(ver, log)
				hooks.run()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			<-done
			signal.Stop(hup)
			ver.Close()
		})
	}
}

// reloadHooks are more things SIGHUP reloads, added as they are built.
type reloadHooks struct {
	mu sync.Mutex
	fs []func()
}

func (h *reloadHooks) add(f func()) {
	h.mu.Lock()
	h.fs = append(h.fs, f)
	h.mu.Unlock()
}

func (h *reloadHooks) run() {
	if h == nil {
		return
	}
	h.mu.Lock()
	fs := h.fs
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// reloadKeys runs one Reload and logs what came of it.
func reloadKeys(ver *auth.Verifier, log *slog.Logger) {
	err := ver.Reload()
	if err == nil {
		log.Info("token keys reloaded on SIGHUP", "algorithms", ver.Algorithms())
		return
	}
	if je := (*auth.JWKSError)(nil); errors.As(err, &je) {
		log.Warn("token keys reloaded on SIGHUP but the JWKS URL failed; its keys of the last good fetch stay in use", "err", err)
		return
	}
	log.Error("token keys not reloaded on SIGHUP: the keys in use stay", "err", err)
}
