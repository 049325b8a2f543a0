package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var errBackend = errors.New("backend down")

func newBreaker(t *testing.T, cfg BreakerConfig) *Breaker {
	t.Helper()
	cfg.Logger = testLogger(t)
	b, err := NewBreaker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// next waits for the next state change.
func next(t *testing.T, b *Breaker) StateChange {
	t.Helper()
	select {
	case c := <-b.Changes():
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no state change within 5s")
		return StateChange{}
	}
}

func TestBreakerOpensOnErrorsFailsFastAndCloses(t *testing.T) {
	var transitions atomic.Int32
	b := newBreaker(t, BreakerConfig{Backend: "errors-test", ErrorCount: 3, MinRequests: 3, SlowCall: -1,
		StatInterval: time.Second, RetryTimeout: 200 * time.Millisecond,
		OnStateChange: func(StateChange) { transitions.Add(1) }})
	ctx := t.Context()
	var calls atomic.Int32
	fail := func(context.Context) error { calls.Add(1); return errBackend }
	ok := func(context.Context) error { calls.Add(1); return nil }

	for range 3 {
		if err := b.Do(ctx, "feed.read", fail); !errors.Is(err, errBackend) {
			t.Fatalf("closed breaker: got %v, want fn's error", err)
		}
	}
	if c := next(t, b); c != (StateChange{Name: "feed.read", From: Closed, To: Open}) {
		t.Fatalf("change %+v", c)
	}
	if b.State("feed.read") != Open || value(b.m.state.WithLabelValues("feed.read")) != 1 {
		t.Fatal("state or gauge not open")
	}
	before := calls.Load()
	for range 10 {
		if err := b.Do(ctx, "feed.read", ok); !errors.Is(err, ErrOpen) {
			t.Fatalf("open breaker: %v", err)
		}
	}
	if calls.Load() != before || value(b.m.rejected.WithLabelValues("feed.read")) != 10 {
		t.Fatal("fn was called while open, or rejections not counted")
	}
	if err := b.Do(ctx, "acks.flush", ok); err != nil {
		t.Fatalf("another name is affected: %v", err)
	}
	// After RetryTimeout one probe goes through; its success closes it.
	eventually(t, 3*time.Second, "a call succeeds again", func() bool { return b.Do(ctx, "feed.read", ok) == nil })
	if c := next(t, b); c.To != HalfOpen {
		t.Fatalf("change %+v, want half-open", c)
	}
	if c := next(t, b); c.To != Closed {
		t.Fatalf("change %+v, want closed", c)
	}
	if b.State("feed.read") != Closed || transitions.Load() != 3 {
		t.Fatalf("state %v, %d transitions", b.State("feed.read"), transitions.Load())
	}
}

func TestBreakerOpensOnSlowCalls(t *testing.T) {
	b := newBreaker(t, BreakerConfig{Backend: "slow-test", SlowCall: 20 * time.Millisecond, SlowRatio: 0.5,
		MinRequests: 2, StatInterval: time.Second, RetryTimeout: time.Minute})
	slow := func(ctx context.Context) error {
		time.Sleep(40 * time.Millisecond) // a slow backend call, not synchronisation
		return nil
	}
	for range 2 {
		if err := b.Do(t.Context(), "xadd", slow); err != nil {
			t.Fatal(err)
		}
	}
	if c := next(t, b); c.To != Open {
		t.Fatalf("change %+v", c)
	}
	if err := b.Do(t.Context(), "xadd", slow); !errors.Is(err, ErrOpen) {
		t.Fatalf("got %v", err)
	}
}

func TestBreakerIgnoresAnswersThatAreNotFailures(t *testing.T) {
	b := newBreaker(t, BreakerConfig{Backend: "nil-test", ErrorCount: 1, MinRequests: 1, SlowCall: -1, StatInterval: time.Second})
	for _, err := range []error{redis.Nil, context.Canceled} {
		for range 5 {
			if got := b.Do(t.Context(), "get", func(context.Context) error { return err }); !errors.Is(got, err) {
				t.Fatalf("got %v", got)
			}
		}
	}
	if b.State("get") != Closed {
		t.Fatal("redis.Nil or context.Canceled opened the breaker")
	}
	if _, err := NewBreaker(BreakerConfig{Backend: "nil-test"}); err == nil {
		t.Fatal("two Breakers for one backend")
	}
}
