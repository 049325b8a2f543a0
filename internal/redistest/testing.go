package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

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

// StartReplica launches a replica of master for the test (Start with
// --replicaof master) and waits until it acknowledges master's writes: a
// WAIT on master from then on counts it without delay. (Just after the
// first sync Redis shows a replica online while its acknowledgements can
// still lag by up to a second, its periodic ACK.) It sets master's
// repl-diskless-sync-delay to 0 first, so that the first sync starts at
// once rather than after Redis's default 5s. It fails the test if the
// replica does not acknowledge within 30s. opts are as for Start.
func StartReplica(tb testing.TB, master *Server, opts ...Option) *Server {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: master.Addr()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	if err := c.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
		tb.Fatalf("replica of %s: %v", master.Addr(), err)
	}
	opts = append(opts, WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(master.Port())))
	r := Start(tb, opts...)
	online := "port=" + strconv.Itoa(r.Port()) + ",state=online"
	for {
		info, err := c.Info(ctx, "replication").Result()
		if err == nil && strings.Contains(info, online) && synced(ctx, c, strings.Count(info, ",state=online")) {
			return r
		}
		if ctx.Err() != nil {
			tb.Fatalf("replica %s of %s not in sync after 30s: %v\n%s", r.Addr(), master.Addr(), err, info)
		}
		time.Sleep(20 * time.Millisecond) // polling the replication link
	}
}

// synced reports whether n replicas acknowledge a write on c's server
// within a second. The write is a PUBLISH, which Redis passes on to its
// replicas but which leaves the keyspace alone.
func synced(ctx context.Context, c *redis.Client, n int) bool {
	var wait *redis.Cmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, "redistest:replica-sync", "")
		wait = p.Do(ctx, "WAIT", n, 1000) // WAIT counts this connection's writes
		return nil
	})
	got, _ := wait.Int()
	return err == nil && got >= n
}
