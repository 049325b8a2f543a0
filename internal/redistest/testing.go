package redistest

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// Start launches a redis-server for the test and registers a cleanup that
// kills it. The data directory is a fresh tb.TempDir() unless WithDir says
// otherwise. If redis-server cannot be found or does not come up, Start
// fails the test with a message that says why (naming `go tool task setup`
// when the binary is missing); it never skips.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var cfg Config
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.Dir == "" {
		// Registered before Close, so it runs after it: the directory is
		// removed only once the server is gone.
		cfg.Dir = tb.TempDir()
	}
	s, err := Launch(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return s
}

// Client returns a go-redis client for the server, closed at the test's
// cleanup (before the server is).
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
