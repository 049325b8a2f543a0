package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// worker handles one ingest stream while its lease is held: it is the only
// reader of the stream in the group, and it handles entries strictly in id
// order, one batch at a time.
type worker struct {
	d      *Dispatcher
	cfg    *Config
	rdb    redis.UniversalClient
	log    *slog.Logger
	stream string
	lease  string

	leaseValid func() bool // false once the lease surely expired by the local clock; nil: always true

	hw string // id of the newest entry handled since the lease was taken
	// unacked are entries appended to their feeds but not yet
	// acknowledged: the next read acknowledges them in its MULTI, saving
	// a round trip per batch (see deferAck).
	unacked   []string
	lastErr   error // why the last attempt failed, for the dead-letter reason
	failures  int   // consecutive failures, for the backoff
	nextHouse time.Time
}

func newWorker(d *Dispatcher, stream string) *worker {
	return &worker{
		d: d, cfg: &d.cfg, rdb: d.rdb, log: d.log.With(logStream, stream),
		stream: stream, lease: d.cfg.Space.Lease(stream), hw: "0-0",
	}
}

// run takes the stream over and then handles new entries until ctx ends
// (nil) or the lease is lost (ErrLeaseLost).
func (w *worker) run(ctx context.Context) error {
	defer w.flushAcksOnExit(ctx)
	if err := w.takeover(ctx); err != nil {
		return stopErr(ctx, err)
	}
	w.nextHouse = time.Now().Add(w.cfg.ClaimInterval)
	for ctx.Err() == nil {
		if time.Now().After(w.nextHouse) {
			if err := w.housekeeping(ctx); err != nil {
				return stopErr(ctx, err)
			}
			w.nextHouse = time.Now().Add(w.cfg.ClaimInterval)
		}
		msgs, newest, err := w.readNew(ctx)
		switch {
		case err != nil:
			if errors.Is(err, ErrLeaseLost) {
				return err
			}
			w.opFailed(ctx, opRead, err)
			// The read may have taken entries before its reply was lost
			// (Redis died or the connection broke): they are pending for
			// this consumer, and go first, in order, before anything newer.
			if err := w.recover(ctx); err != nil {
				return stopErr(ctx, err)
			}
		case len(msgs) == 0:
			w.wait(ctx, newest)
		default:
			if err := w.handle(ctx, &batch{msgs: msgs, deferAck: true}); err != nil {
				return stopErr(ctx, err)
			}
			if len(msgs) < w.cfg.BatchSize && w.cfg.Linger > 0 {
				sleepCtx(ctx, w.cfg.Linger)
			}
		}
	}
	return nil
}

// stopErr turns the error that ended the worker into its result: nil for
// a shutdown.
func stopErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// readNew reads up to BatchSize new entries; with nothing new it returns
// the stream's newest id, from which wait can block. The read runs in one
// MULTI with a GET of the lease, so it says exactly whether the lease was
// still ours when the entries were taken. If it was not (this dispatcher
// was frozen longer than LeaseTTL), the entries are left alone: the holder
// claims them, at its takeover or, if that already ran, with its periodic
// claim as late entries. They may arrive out of order then, never lost.
func (w *worker) readNew(ctx context.Context) ([]redis.XMessage, string, error) {
	if w.leaseValid != nil && !w.leaseValid() {
		return nil, "", ErrLeaseLost // woken from a freeze: do not even read
	}
	var lease *redis.StringCmd
	var read *redis.XStreamSliceCmd
	var newest *redis.XMessageSliceCmd
	var ack *redis.IntCmd
	acking := len(w.unacked)
	_, err := w.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if acking > 0 {
			ack = p.XAck(ctx, w.stream, w.cfg.Group, w.unacked...)
		}
		lease = p.Get(ctx, w.lease)
		read = p.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: w.cfg.Group, Consumer: w.cfg.Consumer, Streams: []string{w.stream, ">"},
			Count: int64(w.cfg.BatchSize), Block: -1,
		})
		newest = p.XRevRangeN(ctx, w.stream, "+", "-", 1)
		return nil
	})
	if ack != nil && ack.Err() == nil {
		w.unacked = w.unacked[:0] // nothing was added meanwhile: one goroutine
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", fmt.Errorf("read %s: %w", w.stream, err)
	}
	var msgs []redis.XMessage
	if streams := read.Val(); len(streams) > 0 {
		msgs = streams[0].Messages
	}
	if lease.Val() != w.d.owner {
		if len(msgs) > 0 {
			w.log.Warn("read entries after the lease was lost; leaving them to its holder",
				logCount, len(msgs), "holder", lease.Val())
		}
		return nil, "", ErrLeaseLost
	}
	if len(msgs) > 0 {
		return msgs, "", nil
	}
	if last := newest.Val(); len(last) > 0 {
		return nil, last[0].ID, nil
	}
	return nil, "0-0", nil
}

// flushAcks acknowledges the entries whose acknowledgement was deferred.
func (w *worker) flushAcks(ctx context.Context) error {
	if len(w.unacked) == 0 {
		return nil
	}
	if err := w.rdb.XAck(ctx, w.stream, w.cfg.Group, w.unacked...).Err(); err != nil {
		return fmt.Errorf("acknowledge %d entries of %s: %w", len(w.unacked), w.stream, err)
	}
	w.unacked = w.unacked[:0]
	return nil
}

// flushAcksOnExit acknowledges what is left when the worker stops, even
// after ctx ended. Entries it cannot acknowledge stay pending and are
// claimed by the stream's next holder, whose feeds already have them: the
// source ids make them duplicates, as after a crash.
func (w *worker) flushAcksOnExit(ctx context.Context) {
	if len(w.unacked) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := w.flushAcks(ctx); err != nil {
		w.d.m.errors.WithLabelValues(opAck).Inc()
		w.log.Warn("acknowledge on stop", logErr, err)
	}
}

// wait blocks until the stream has an entry newer than newest, for at most
// Block. XREAD does not consume anything: the next readNew does, under the
// lease check.
func (w *worker) wait(ctx context.Context, newest string) {
	err := w.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{w.stream, newest}, Count: 1, Block: w.cfg.Block,
	}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.opFailed(ctx, opRead, err)
	}
}

// opFailed handles a failed Redis operation of the worker's loop: a
// missing consumer group is created again; anything else is counted in
// herald_dispatcher_errors_total under op, logged, and waited out with
// the backoff.
func (w *worker) opFailed(ctx context.Context, op string, err error) {
	if ctx.Err() != nil {
		return
	}
	if isNoGroup(err) {
		w.log.Warn("consumer group missing; creating it again", logErr, err)
		if err = w.d.ensureGroup(ctx, w.stream); err == nil {
			return
		}
	}
	w.d.m.errors.WithLabelValues(op).Inc()
	w.log.Warn(op+" failed", logErr, err)
	w.backoff(ctx)
}

// The ops of herald_dispatcher_errors_total that opFailed counts.
const (
	opRead  = "read"  // reading new or pending entries
	opClaim = "claim" // claiming entries left idle, and what that reads
	opAck   = "ack"   // acknowledging entries held back from earlier batches
)

// backoff sleeps for the next capped exponential delay; false when ctx
// ended first.
func (w *worker) backoff(ctx context.Context) bool {
	d := w.cfg.RetryMin << min(w.failures, 20)
	d = min(d, w.cfg.RetryMax)
	w.failures++
	return sleepCtx(ctx, d)
}

// readPending reads this consumer's own pending entries, oldest first.
func (w *worker) readPending(ctx context.Context, count int) ([]redis.XMessage, error) {
	res, err := w.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: w.cfg.Group, Consumer: w.cfg.Consumer, Streams: []string{w.stream, "0"},
		Count: int64(count), Block: -1,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pending of %s: %w", w.stream, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// deliveries returns the delivery counts of msgs, which this consumer holds.
func (w *worker) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	pend, err := w.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: w.stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
		Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read delivery counts on %s: %w", w.stream, err)
	}
	counts := make(map[string]int64, len(pend))
	for _, p := range pend {
		counts[p.ID] = p.RetryCount
	}
	return counts, nil
}

// sleepCtx sleeps for d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
