package replicas_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/internal/replicas"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// keyOf is key i, with a hash tag of its own.
func keyOf(i int) string { return fmt.Sprintf("k:{%d}", i) }

// set queues SET <key i> v as command i.
func set(cmds []*redis.StatusCmd) func(redis.Pipeliner, int) {
	return func(pipe redis.Pipeliner, i int) { cmds[i] = pipe.Set(context.Background(), keyOf(i), "v", 0) }
}

func TestWithoutReplicaNotReplicated(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	cmds := make([]*redis.StatusCmd, 5)
	err := replicas.Exec(context.Background(), rdb, replicas.Policy{Replicas: 1, Timeout: 50 * time.Millisecond}, 5, false, keyOf, set(cmds))
	if !errors.Is(err, replicas.ErrNotReplicated) {
		t.Fatalf("err %v, want ErrNotReplicated", err)
	}
	for i, c := range cmds {
		if c.Err() != nil {
			t.Fatalf("command %d: %v (the writes are made on the master all the same)", i, c.Err())
		}
	}
}

func TestClusterWaitsOnEveryMaster(t *testing.T) {
	cl := redistest.StartCluster(t, 3, redistest.WithReplicas(1))
	rdb := cl.Client(t)
	ctx := context.Background()
	const n = 60
	// In transactions too (tx): one per slot, since a MULTI may not span
	// slots, with the WAIT after them (inside one it would not wait).
	for _, tx := range []bool{false, true} {
		value := fmt.Sprint("v-", tx)
		cmds := make([]*redis.StatusCmd, n)
		queue := func(pipe redis.Pipeliner, i int) { cmds[i] = pipe.Set(ctx, keyOf(i), value, 0) }
		if err := replicas.Exec(ctx, rdb, replicas.Policy{Replicas: 1, Timeout: 2 * time.Second}, n, tx, keyOf, queue); err != nil {
			t.Fatalf("tx %v: %v", tx, err)
		}
		for i, c := range cmds {
			if c.Err() != nil {
				t.Fatalf("tx %v: command %d: %v", tx, i, c.Err())
			}
		}
		// every key is on its master's replica at once: WAIT returned after
		// the replica acknowledged it
		for i := range n {
			m, err := rdb.MasterForKey(ctx, keyOf(i))
			if err != nil {
				t.Fatal(err)
			}
			var replica *redis.Client
			for j, node := range cl.Nodes[:cl.Masters] {
				if node.Addr() == m.Options().Addr {
					replica = cl.Nodes[cl.Masters+j].Client(t)
				}
			}
			// a plain client on a replica: GET of a key of its master's slot
			// answers MOVED unless the connection is READONLY; the pool may
			// give another connection, so ask in one pipeline
			var got *redis.StringCmd
			_, err = replica.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Do(ctx, "READONLY")
				got = p.Get(ctx, keyOf(i))
				return nil
			})
			if err != nil || got.Val() != value {
				t.Fatalf("tx %v: key %s on the replica: %q %v", tx, keyOf(i), got.Val(), err)
			}
		}
	}
}

// TestWaitLongerThanReadTimeout: a WAIT timeout well past the client's
// ReadTimeout gives the WAIT's own answer, not an i/o timeout, and the
// pipeline is sent once (go-redis sends a pipeline that timed out again,
// writes and all, up to MaxRetries times) on a connection that is kept.
func TestWaitLongerThanReadTimeout(t *testing.T) {
	const n = 5
	pol := replicas.Policy{Replicas: 1, Timeout: 700 * time.Millisecond}
	for _, tc := range []struct {
		name string
		set  func(t *testing.T, master *redistest.Server) // the master's replicas
		want error
	}{
		{"no replica", func(*testing.T, *redistest.Server) {}, replicas.ErrNotReplicated},
		{"replica frozen", func(t *testing.T, master *redistest.Server) {
			r := redistest.StartReplica(t, master)
			if err := r.Pause(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Resume() })
		}, replicas.ErrNotReplicated},
		{"replica", func(t *testing.T, master *redistest.Server) { redistest.StartReplica(t, master) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master := redistest.Start(t)
			tc.set(t, master)
			rdb := redis.NewClient(&redis.Options{Addr: master.Addr(), ReadTimeout: 200 * time.Millisecond})
			t.Cleanup(func() { _ = rdb.Close() })
			ctx := context.Background()
			incr := func(pipe redis.Pipeliner, i int) { pipe.Incr(ctx, keyOf(i)) }
			start := time.Now()
			err := replicas.Exec(ctx, rdb, pol, n, false, keyOf, incr)
			t.Logf("Exec: %v after %v", err, time.Since(start))
			if !errors.Is(err, tc.want) { // errors.Is(err, nil): err == nil
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			for i := range n {
				if got, err := master.Client(t).Get(ctx, keyOf(i)).Int(); got != 1 || err != nil {
					t.Fatalf("key %d: %d %v, want 1: the pipeline was sent more than once", i, got, err)
				}
			}
			s := *rdb.PoolStats()
			if s.PipelineStats != nil { // pipelines have a pool of their own
				s = redis.PoolStats(*s.PipelineStats)
			}
			if s.TotalConns != 1 || s.IdleConns != 1 {
				t.Fatalf("pool %d connections, %d idle; want the one connection kept", s.TotalConns, s.IdleConns)
			}
		})
	}
}

// TestClusterWaitLongerThanReadTimeout: on a cluster too (each master's
// pipeline goes through its node's client), a WAIT longer than the
// client's ReadTimeout on a master whose replica is frozen gives
// ErrNotReplicated, not an i/o timeout.
func TestClusterWaitLongerThanReadTimeout(t *testing.T) {
	cl := redistest.StartCluster(t, 1, redistest.WithReplicas(1))
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs()[:1], ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil { // load the slot map before the replica freezes
		t.Fatal(err)
	}
	replica := cl.Nodes[1]
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replica.Resume() })
	const n = 5
	incr := func(pipe redis.Pipeliner, i int) { pipe.Incr(ctx, keyOf(i)) }
	err := replicas.Exec(ctx, rdb, replicas.Policy{Replicas: 1, Timeout: 700 * time.Millisecond}, n, false, keyOf, incr)
	if !errors.Is(err, replicas.ErrNotReplicated) {
		t.Fatalf("err %v, want ErrNotReplicated", err)
	}
	for i := range n {
		if got, err := cl.Nodes[0].Client(t).Get(ctx, keyOf(i)).Int(); got != 1 || err != nil {
			t.Fatalf("key %d: %d %v, want 1: the pipeline was sent more than once", i, got, err)
		}
	}
}
