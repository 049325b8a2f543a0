package redistest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestClusterSpreadsSlotsOverThreeMasters(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cl := c.Client(t)
	ctx := context.Background()
	for i := range 300 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Every node holds some of the keys: the slots are really split.
	for i, n := range c.Nodes {
		if size := n.Client(t).DBSize(ctx).Val(); size == 0 {
			t.Fatalf("node %d holds no key", i)
		}
	}
	if err := cl.Eval(ctx, "return redis.call('MSET', KEYS[1], 1, KEYS[2], 2)", []string{"a", "b"}).Err(); err == nil {
		t.Fatal("a script over two slots ran")
	}
}
