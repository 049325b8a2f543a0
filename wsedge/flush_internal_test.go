package wsedge

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge/auth"
)

// TestFlushAcksSpread: the periodic copy of ACK positions to Redis is
// spread over the time it is given, in pipelines, instead of one burst;
// a drain (spread 0) copies everything at once. Either way every position
// reaches Redis.
func TestFlushAcksSpread(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	st, err := store.Open(t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ver, err := auth.New(auth.Config{HS256Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(rdb, Config{Verifier: ver, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer e.cancel()
	ctx := context.Background()
	dirty := func(n int, seq uint64) {
		t.Helper()
		for i := range n {
			p := store.AckPosition{Tenant: "acme", User: "u" + strconv.Itoa(i), Device: "d", Feed: "user", Epoch: "e1", Seq: seq}
			if err := st.Ack(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := st.UnflushedLen(); got != n {
			t.Fatalf("%d positions unflushed, want %d", got, n)
		}
	}
	inRedis := func(n int, seq uint64) {
		t.Helper()
		for i := range n {
			got, err := rdb.HGet(ctx, keys.Space{}.Acks("acme", "u"+strconv.Itoa(i), "d"), "user").Result()
			if err != nil || got != formatPosition("e1", seq) {
				t.Fatalf("position of u%d in Redis = %q, %v; want %q", i, got, err, formatPosition("e1", seq))
			}
		}
	}

	// 1000 positions spread over 400ms: pipelines of 256, 256, 256 and 232,
	// 100ms apart.
	dirty(1000, 1)
	start := time.Now()
	if err := e.flushAcks(ctx, 400*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("spread flush of 1000 positions took %v, want at least 300ms (3 pauses of 100ms)", took)
	}
	inRedis(1000, 1)
	if n := st.UnflushedLen(); n != 0 {
		t.Errorf("%d positions still unflushed", n)
	}

	// A drain copies everything without pauses.
	dirty(1000, 2)
	if err := e.flushAcks(ctx, 0); err != nil {
		t.Fatal(err)
	}
	inRedis(1000, 2)
}
