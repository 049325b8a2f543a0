package dispatcher

import (
	"context"
	"errors"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"io"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestIDOrder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"1-0", "2-0", true}, {"2-0", "10-0", true}, {"5-2", "5-10", true},
		{"5-10", "5-2", false}, {"7-1", "7-1", false}, {"0-0", "1-0", true},
	} {
		if got := idLess(c.a, c.b); got != c.less {
			t.Errorf("idLess(%s, %s) = %v", c.a, c.b, got)
		}
	}
}

func TestDeadLetterFieldsRoundTrip(t *testing.T) {
	orig := map[string]any{"type": "a", "reason": "mine", "orig.x": "y", "data": "{}"}
	dl := deadLetter{values: orig, reason: "bad", sourceID: "5-1", deliveries: 2}
	vals := dl.xaddValues("herald:events", time.UnixMilli(1234))
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		if _, dup := m[vals[i].(string)]; dup {
			t.Fatalf("field %s written twice", vals[i])
		}
		m[vals[i].(string)] = vals[i+1]
	}
	got := parseDeadLetter("9-0", m)
	if got.Reason != "bad" || got.SourceID != "5-1" || got.SourceStream != "herald:events" ||
		got.Deliveries != 2 || got.FailedAt.UnixMilli() != 1234 || len(got.Fields) != len(orig) {
		t.Fatalf("round trip: %+v", got)
	}
	for k, v := range orig {
		if got.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, got.Fields[k], v)
		}
	}
}

func TestTransient(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	rdb.Set(ctx, "s", "x", 0)
	wrongType := rdb.HGet(ctx, "s", "f").Err()
	if wrongType == nil || transient(wrongType) {
		t.Fatalf("WRONGTYPE is transient: %v", wrongType)
	}
	if !transient(io.EOF) || !transient(fmt.Errorf("append: %w", errors.New("dial tcp: refused"))) {
		t.Fatal("network errors are not transient")
	}
	if transient(fmt.Errorf("append: %w", wrongType)) {
		t.Fatal("wrapped WRONGTYPE is transient")
	}
}

// testWorker returns a worker over a fresh server whose lease on the
// stream is held by the worker's dispatcher.
func testWorker(t *testing.T) (*worker, *redis.Client) {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	d, err := New(rdb, Config{Consumer: "me", ConsumerIdleTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.setup(ctx); err != nil {
		t.Fatal(err)
	}
	w := newWorker(d, d.streams[0])
	if err := rdb.Set(ctx, w.lease, d.owner, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	return w, rdb
}

func TestReadIsFencedByTheLease(t *testing.T) {
	w, rdb := testWorker(t)
	ctx := context.Background()
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{"a", "1"}})
	rdb.Set(ctx, w.lease, "someone else", time.Minute)
	if _, _, err := w.readNew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("read without the lease: %v", err)
	}
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{"a", "2"}})
	rdb.Set(ctx, w.lease, w.d.owner, time.Minute)
	msgs, _, err := w.readNew(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].Values["a"] != "2" {
		t.Fatalf("read with the lease: %v %+v", err, msgs)
	}
	msgs, newest, err := w.readNew(ctx)
	if err != nil || len(msgs) != 0 || newest != rdb.XRevRangeN(ctx, w.stream, "+", "-", 1).Val()[0].ID {
		t.Fatalf("read with nothing new: %v %+v newest %q", err, msgs, newest)
	}
}

// A dispatcher that reads after losing its lease leaves the entries in its
// pending list; the holder's periodic claim delivers them late, out of
// order, rather than dropping them as older than what the feed has.
func TestEntriesReadWithoutTheLeaseAreDeliveredLate(t *testing.T) {
	w1, rdb := testWorker(t)
	ctx := context.Background()
	d2, err := New(rdb, Config{Consumer: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	w2 := newWorker(d2, w1.stream)
	rdb.Set(ctx, w1.lease, d2.owner, time.Minute)
	fields := func(n int) []any {
		return []any{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", fmt.Sprintf(`{"n":%d}`, n)}
	}
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: w1.stream, Values: fields(1)})
	if _, _, err := w1.readNew(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("stale read: %v", err)
	}
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: w1.stream, Values: fields(2)})
	msgs, _, err := w2.readNew(ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("holder read: %v %v", err, msgs)
	}
	if err := w2.handle(ctx, &batch{msgs: msgs}); err != nil {
		t.Fatal(err)
	}
	if n, err := w2.claim(ctx, 0, w2.hw); err != nil || n != 1 {
		t.Fatalf("claim: %d, %v", n, err)
	}
	got := rdb.XRange(ctx, (keys.Space{}).FeedStream(keys.UserFeed("acme", "u1")), "-", "+").Val()
	if len(got) != 2 || got[0].Values["data"] != `{"n":2}` || got[1].Values["data"] != `{"n":1}` {
		t.Fatalf("feed %v, want n=2 then the late n=1", got)
	}
	if p := rdb.XPending(ctx, w1.stream, w1.cfg.Group).Val().Count; p != 0 {
		t.Fatalf("%d entries still pending", p)
	}
}

func TestIdleConsumersWithoutPendingAreRemoved(t *testing.T) {
	w, rdb := testWorker(t)
	ctx := context.Background()
	g := w.cfg.Group
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{"a", "1"}})
	rdb.XGroupCreateConsumer(ctx, w.stream, g, "old")
	rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: g, Consumer: "busy", Streams: []string{w.stream, ">"}, Block: -1})
	rdb.XGroupCreateConsumer(ctx, w.stream, g, "me")
	names := func() map[string]bool {
		out := map[string]bool{}
		for _, c := range rdb.XInfoConsumers(ctx, w.stream, g).Val() {
			out[c.Name] = true
		}
		return out
	}
	pollUntil(t, 5*time.Second, "idle consumer old to be removed", func() bool {
		w.removeIdleConsumers(ctx)
		return !names()["old"]
	})
	if n := names(); !n["busy"] || !n["me"] {
		t.Fatalf("consumers left: %v; busy (pending) and me must stay", n)
	}
	// Without the lease nothing is removed.
	rdb.Set(ctx, w.lease, "someone else", time.Minute)
	rdb.XAck(ctx, w.stream, g, rdb.XPending(ctx, w.stream, g).Val().Lower)
	for idle := time.Duration(0); idle < 2*w.cfg.ConsumerIdleTimeout; {
		time.Sleep(10 * time.Millisecond) // polling until busy is idle long enough
		for _, c := range rdb.XInfoConsumers(ctx, w.stream, g).Val() {
			if c.Name == "busy" {
				idle = c.Idle
			}
		}
	}
	w.removeIdleConsumers(ctx)
	if !names()["busy"] {
		t.Fatal("removed a consumer without holding the lease")
	}
}

// A batch of new entries is acknowledged by the next read, in its MULTI;
// a failed read keeps the acknowledgement for later, recover sends it
// before it reads the pending list, and a stopping worker sends what is
// left.
func TestDeferredAcknowledgement(t *testing.T) {
	w, rdb := testWorker(t)
	ctx := context.Background()
	pending := func() int64 { return rdb.XPending(ctx, w.stream, w.cfg.Group).Val().Count }
	add := func(n int) {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: w.stream, Values: []any{
			"type", "a.b", "tenant", "acme", "to", "user:u1", "data", fmt.Sprintf(`{"n":%d}`, n)}})
	}
	handleNew := func() {
		t.Helper()
		msgs, _, err := w.readNew(ctx)
		if err != nil || len(msgs) == 0 {
			t.Fatalf("read: %v %v", err, msgs)
		}
		if err := w.handle(ctx, &batch{msgs: msgs, deferAck: true}); err != nil {
			t.Fatal(err)
		}
	}

	add(1)
	add(2)
	handleNew()
	if p := pending(); p != 2 || len(w.unacked) != 2 {
		t.Fatalf("after the batch: %d pending, %d unacked; want both deferred", p, len(w.unacked))
	}
	if _, _, err := w.readNew(ctx); err != nil {
		t.Fatal(err)
	}
	if p := pending(); p != 0 || len(w.unacked) != 0 {
		t.Fatalf("after the next read: %d pending, %d unacked", p, len(w.unacked))
	}

	// the next read is not sent (its context ended): the acknowledgement
	// stays, and recover sends it before reading the pending list
	add(3)
	handleNew()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := w.readNew(ended); err == nil {
		t.Fatal("read with an ended context succeeded")
	}
	if len(w.unacked) != 1 || pending() != 1 {
		t.Fatalf("after a failed read: %d unacked, %d pending", len(w.unacked), pending())
	}
	reclaimed := func() int {
		var m dto.Metric
		w.d.m.appends.WithLabelValues("duplicate").Write(&m)
		return int(m.GetCounter().GetValue())
	}
	dups := reclaimed()
	if err := w.recover(ctx); err != nil {
		t.Fatal(err)
	}
	if reclaimed() != dups {
		t.Fatal("recover handled an entry again that was appended and only waited for its acknowledgement")
	}
	if p := pending(); p != 0 || len(w.unacked) != 0 {
		t.Fatalf("after recover: %d pending, %d unacked", p, len(w.unacked))
	}

	// a worker that stops, its context ended, acknowledges what is left
	add(4)
	handleNew()
	w.flushAcksOnExit(ended)
	if p := pending(); p != 0 {
		t.Fatalf("after stopping: %d pending", p)
	}
	if n := len(rdb.XRange(ctx, (keys.Space{}).FeedStream(keys.UserFeed("acme", "u1")), "-", "+").Val()); n != 4 {
		t.Fatalf("feed has %d entries, want 4", n)
	}
}

// TestLeaseValidityCountsFromTheSend: a lease taken by a SET whose reply
// came back late is surely held only until LeaseTTL after the SET was
// sent; counting from the reply would overstate it by the round trip.
func TestLeaseValidityCountsFromTheSend(t *testing.T) {
	w, _ := testWorker(t)
	ttl := w.d.cfg.LeaseTTL
	late := newHolder(context.Background(), w.d, w.stream, time.Now().Add(-ttl-time.Millisecond))
	defer late.cancel()
	if late.valid() {
		t.Fatalf("a lease sent %v ago with a TTL of %v counts as held", ttl+time.Millisecond, ttl)
	}
	fresh := newHolder(context.Background(), w.d, w.stream, time.Now())
	defer fresh.cancel()
	if !fresh.valid() {
		t.Fatal("a lease just taken counts as lost")
	}
}

// pollUntil polls cond until it holds or the deadline passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay) // polling a condition with a deadline
	}
}
