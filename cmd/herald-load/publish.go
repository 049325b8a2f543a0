package main

import (
	"context"
	"sync/atomic"
	"time"
)

// publisher sends one personal phase: event n goes to user n mod users,
// paced open-loop to rate: each pass sends every event due by now (at most
// batch in one round trip), stamped with the time it is sent, so a slow
// Redis shows up as larger batches and as lag behind the schedule, not as
// a lower rate that hides latency.
type publisher struct {
	t     Target
	runID string
	users int
	rate  float64
	total int
	batch int
	keys  bool  // an idempotency key on every event
	first int64 // number of the first event: a phase's second publisher goes on from the first's

	sent     atomic.Int64  // stored
	errors   atomic.Int64  // refused or failed
	maxLagUS atomic.Int64  // furthest behind schedule (a pass waits for a millisecond of events, so up to about 1ms of it is by design)
	elapsed  time.Duration // from the first send to the last reply (valid after run)
	expected []int32       // per user: events stored for it (valid after run)
	firstErr atomic.Pointer[string]
}

func newPublisher(t Target, run string, users int, rate float64, d time.Duration, batch int, keys bool) *publisher {
	return &publisher{t: t, runID: run, users: users, rate: rate, total: max(1, int(rate*d.Seconds())), batch: batch, keys: keys,
		expected: make([]int32, users)}
}

// run publishes until total are sent or ctx ends.
func (pb *publisher) run(ctx context.Context) {
	start := time.Now()
	defer func() { pb.elapsed = time.Since(start) }()
	evs := make([]Event, 0, pb.batch)
	// A pass waits until a millisecond's worth of events is due (or one
	// event, at rates under 1000/s): a producer batching like this is what
	// a busy service does, and one round trip per event would cost the
	// shared cores more than the events it carries.
	step := max(1, int(pb.rate/1000))
	for n := 0; n < pb.total && ctx.Err() == nil; {
		due := min(pb.total, int(time.Since(start).Seconds()*pb.rate)+1)
		if due < min(pb.total, n+step) {
			next := start.Add(time.Duration(float64(n+step-1) / pb.rate * float64(time.Second)))
			if sleepUntil(ctx, next) != nil {
				return
			}
			continue
		}
		if lag := time.Since(start.Add(time.Duration(float64(n) / pb.rate * float64(time.Second)))); lag.Microseconds() > pb.maxLagUS.Load() {
			pb.maxLagUS.Store(lag.Microseconds())
		}
		end := min(due, n+pb.batch)
		now := time.Now().UnixMicro()
		evs = evs[:0]
		for i := n; i < end; i++ {
			num := pb.first + int64(i)
			ev := Event{User: int(num % int64(pb.users)), Data: appendPayload(nil, now, num, pb.runID)}
			if pb.keys {
				ev.Key = idempotencyKey(pb.runID, num)
			}
			evs = append(evs, ev)
		}
		stored, err := pb.t.PublishPersonal(ctx, evs)
		pb.count(n, stored, err)
		n = end
	}
}

// count records which of the events from n on were stored.
func (pb *publisher) count(n int, stored []bool, err error) {
	if err != nil {
		msg := err.Error()
		pb.firstErr.CompareAndSwap(nil, &msg)
	}
	for i, ok := range stored {
		if ok {
			pb.sent.Add(1)
			pb.expected[(pb.first+int64(n+i))%int64(pb.users)]++
		} else {
			pb.errors.Add(1)
		}
	}
}

// broadcastRound publishes round r to every client and returns its
// publish time in unix µs.
func broadcastRound(ctx context.Context, t Target, run string, r int, keys bool) (int64, error) {
	now := time.Now().UnixMicro()
	ev := Event{Data: appendPayload(nil, now, int64(r), run)}
	if keys {
		ev.Key = idempotencyKey(run, int64(r))
	}
	return now, t.PublishBroadcast(ctx, ev)
}
