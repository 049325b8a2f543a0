package wsedge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
)

// TestSlowFillHoldsUpNoOtherFeed: while one feed's fill cannot read its
// stream (its Redis master frozen or failing over), the hub goes on with
// the messages of every other feed; the fill finishes once it can read.
func TestSlowFillHoldsUpNoOtherFeed(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	h := newHub(rdb, keys.Space{}, slog.New(slog.DiscardHandler), newMetrics(), 8)
	release := make(chan struct{})
	var blockedOnce sync.Once
	blocked := make(chan struct{})
	h.call = func(ctx context.Context, name string, fn func(context.Context) error) error {
		if name == "feed.read" {
			blockedOnce.Do(func() { close(blocked) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return fn(ctx)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx) }()
	defer func() { cancel(); <-done }()

	slow, other := keys.UserFeed("acme", "slow"), keys.UserFeed("acme", "other")
	var states []*feedState
	for _, f := range []keys.Feed{slow, other} {
		fs, err := h.acquire(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, fs)
	}
	publish := func(f keys.Feed, e feed.Entry) {
		t.Helper()
		if err := rdb.Publish(ctx, h.space.FeedChannel(f), e.AppendPayload(nil)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// seq 2 of a feed the hub has never seen: a gap, so the hub fills it
	publish(slow, feed.Entry{Epoch: "e1", Seq: 2, Type: "t", TS: 1, Data: []byte(`{}`)})
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("no fill after a gap")
	}
	publish(other, feed.Entry{Epoch: "e2", Seq: 1, Type: "t", TS: 1, Data: []byte(`{}`)})
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs := states[1]
		fs.mu.Lock()
		last := fs.last
		fs.mu.Unlock()
		if last == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another feed's message waited for the blocked fill")
		}
		time.Sleep(5 * time.Millisecond) // polling the hub's state, not synchronising
	}
	close(release)
	for _, fs := range states {
		h.release(fs)
	}
}

// A pending feed (the connect reads its newest position in its own round
// trip): acquire waits until settle; a resubscription while pending makes
// start fill from the position settle gives, instead of filling before it
// and then going back to it; a settle with an error fails the waiters.
func TestPendingFeedWaitsForSettle(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	h := newHub(rdb, keys.Space{}, slog.New(slog.DiscardHandler), newMetrics(), 8)
	h.call = func(ctx context.Context, _ string, fn func(context.Context) error) error { return fn(ctx) }
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan struct{})
	go func() { defer close(done); h.run(ctx) }()
	defer func() { cancel(); <-done }()

	f := keys.UserFeed("acme", "pending")
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	var reqs []feed.Request
	for i := 1; i <= 5; i++ {
		reqs = append(reqs, feed.Request{Feed: f, Type: "t", TS: int64(i), Data: []byte(`{}`)})
	}
	res, err := a.Append(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	epoch := res[0].Epoch

	fs, pending, err := h.acquirePending(ctx, f)
	if err != nil || !pending {
		t.Fatalf("acquirePending: pending %v, %v", pending, err)
	}
	waited := make(chan error, 1)
	go func() {
		got, err := h.acquire(ctx, f)
		if err == nil && got != fs {
			err = errors.New("another feed state")
		}
		waited <- err
	}()
	// Redis confirms the subscription again (a reconnect) while pending.
	h.onSubscribed(ctx, fs.channel)
	for deadline := time.Now().Add(10 * time.Second); ; {
		fs.mu.Lock()
		filling := fs.filling
		fs.mu.Unlock()
		if !filling {
			break // no fill runs before the position is known
		}
		if time.Now().After(deadline) {
			t.Fatal("a fill ran for 10 s")
		}
		time.Sleep(time.Millisecond) // polling the hub's state, not synchronising
	}
	select {
	case err := <-waited:
		t.Fatalf("acquire returned before settle: %v", err)
	default:
	}
	h.settle(fs, events.Position{Epoch: epoch, Seq: 3}, nil)
	if err := <-waited; err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs.mu.Lock()
		last, e := fs.last, fs.epoch
		fs.mu.Unlock()
		if last == 5 && e == epoch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("feed at %s/%d, want %s/5: the fill asked for while pending did not run from the settled position", e, last, epoch)
		}
		time.Sleep(5 * time.Millisecond) // polling the hub's state, not synchronising
	}
	h.release(fs)
	h.release(fs)

	// A settle with an error (the connect failed): the hub reads the
	// position itself, and the waiting session goes on; only when that
	// read fails too does the waiter fail.
	var headFails atomic.Bool
	boom := errors.New("redis says no")
	h.call = func(ctx context.Context, name string, fn func(context.Context) error) error {
		if name == "feed.head" && headFails.Load() {
			return boom
		}
		return fn(ctx)
	}
	for _, fails := range []bool{false, true} {
		headFails.Store(fails)
		gs, pending, err := h.acquirePending(ctx, f)
		if err != nil || !pending {
			t.Fatalf("acquirePending: pending %v, %v", pending, err)
		}
		got := make(chan *feedState, 1)
		go func() {
			g, err := h.acquire(ctx, f)
			waited <- err
			got <- g
		}()
		for deadline := time.Now().Add(10 * time.Second); ; {
			gs.mu.Lock()
			refs := gs.refs
			gs.mu.Unlock()
			if refs == 2 {
				break // the second acquire waits on the pending feed
			}
			if time.Now().After(deadline) {
				t.Fatal("the second acquire never took its reference")
			}
			time.Sleep(time.Millisecond) // polling the hub's state, not synchronising
		}
		h.settle(gs, events.Position{}, errors.New("connect round trip failed"))
		h.release(gs)
		err = <-waited
		g := <-got
		if fails {
			if !errors.Is(err, boom) {
				t.Fatalf("acquire after a failed settle and a failed read: %v, want %v", err, boom)
			}
			continue
		}
		if err != nil {
			t.Fatalf("acquire after a failed settle: %v; want the hub to read the position itself", err)
		}
		g.mu.Lock()
		last, e := g.last, g.epoch
		g.mu.Unlock()
		if last != 5 || e != epoch {
			t.Fatalf("feed after a failed settle at %s/%d, want %s/5", e, last, epoch)
		}
		h.release(g)
	}
	if n := h.feedCount(); n != 0 {
		t.Fatalf("%d feeds followed after every reference was released", n)
	}
}
