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
