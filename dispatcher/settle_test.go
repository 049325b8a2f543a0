package dispatcher

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// A batch whose acknowledgement is held for the next read (here: one that
// took longer than ClaimIdle, as one retried through a long OOM or LOADING
// does) must not be claimed by this worker's own periodic claim, which
// would append its entries again as late ones, without the source-id
// check: duplicates in the feeds.
func TestHousekeepingDoesNotClaimHeldAcknowledgements(t *testing.T) {
	w, rdb := testWorker(t)
	ctx := context.Background()
	w.cfg.ClaimIdle = 20 * time.Millisecond
	for n := range 3 {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{
			"type", "a.b", "tenant", "acme", "to", "user:u1", "data", fmt.Sprintf(`{"n":%d}`, n)}})
	}
	msgs, _, err := w.readNew(ctx)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("read: %v %v", err, msgs)
	}
	if err := w.handle(ctx, &batch{msgs: msgs, deferAck: true}); err != nil {
		t.Fatal(err)
	}
	if len(w.unacked) != 3 {
		t.Fatalf("%d acknowledgements held, want 3", len(w.unacked))
	}
	pollUntil(t, 5*time.Second, "the held entries to be idle for ClaimIdle", func() bool {
		p := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: w.stream, Group: w.cfg.Group, Start: "-", End: "+", Count: 10}).Val()
		return len(p) == 3 && p[0].Idle >= w.cfg.ClaimIdle && p[2].Idle >= w.cfg.ClaimIdle
	})
	if err := w.housekeeping(ctx); err != nil {
		t.Fatal(err)
	}
	got := rdb.XRange(ctx, (keys.Space{}).FeedStream(keys.UserFeed("acme", "u1")), "-", "+").Val()
	if len(got) != 3 {
		t.Fatalf("feed has %d entries after housekeeping, want 3: %v", len(got), got)
	}
	if p := rdb.XPending(ctx, w.stream, w.cfg.Group).Val().Count; p != 0 {
		t.Fatalf("%d entries pending after housekeeping", p)
	}
}

// An entry is acknowledged only once its dead letter is written: when the
// XADD to the dead-letter stream fails (here its key holds a string, so
// WRONGTYPE), the entry stays pending and is dead-lettered once the
// dead-letter stream works again. Before, the XACK in the same pipeline
// took, and the entry was gone from both streams.
func TestDeadLetterNotLostWhenItsWriteFails(t *testing.T) {
	w, rdb := testWorker(t)
	ctx := context.Background()
	dlq := w.cfg.Space.DLQ()
	if err := rdb.Set(ctx, dlq, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{
		"type", "a.b", "tenant", "acme", "to", "group:x", "data", `{}`}}).Val()
	msgs, _, err := w.readNew(ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("read: %v %v", err, msgs)
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.handle(hctx, &batch{msgs: msgs, deferAck: true}) }()

	// Wait until the worker either gave up on the entry (handle returned)
	// or re-read it from its pending list (the entry is still there).
	returned := false
	pollUntil(t, 10*time.Second, "handle to return or to re-read the entry", func() bool {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("handle: %v", err)
			}
			returned = true
			return true
		default:
		}
		p := rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: w.stream, Group: w.cfg.Group, Start: "-", End: "+", Count: 1}).Val()
		return len(p) == 1 && p[0].RetryCount >= 2
	})
	rdb.Del(ctx, dlq) // the dead-letter stream works again
	if !returned {
		if err := <-done; err != nil {
			t.Fatalf("handle: %v", err)
		}
	}
	w.flushAcksOnExit(ctx)
	dls := rdb.XRange(ctx, dlq, "-", "+").Val()
	if len(dls) != 1 || dls[0].Values[FieldSourceID] != id {
		t.Fatalf("dead letters %v; want one of entry %s, which was acknowledged without one", dls, id)
	}
	if p := rdb.XPending(ctx, w.stream, w.cfg.Group).Val().Count; p != 0 {
		t.Fatalf("%d entries pending", p)
	}
}
