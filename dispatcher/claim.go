package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeover runs when the lease was just taken: it claims every entry
// pending in the group, whoever read it (the previous holder, crashed or
// paused), and handles them in id order, and then whatever is left in this
// consumer's own pending list. Only then are new entries read.
func (w *worker) takeover(ctx context.Context) error {
	_, err := w.claim(ctx, 0, "")
	if err != nil {
		return err
	}
	return w.recover(ctx)
}

// claim moves entries idle for at least minIdle from any consumer of the
// group to this one with XAUTOCLAIM, in id order, and handles them batch
// by batch. Entries deleted from the stream while pending are only
// acknowledged. lateBefore is passed to the batches.
func (w *worker) claim(ctx context.Context, minIdle time.Duration, lateBefore string) (int, error) {
	total := 0
	for start := "0-0"; ; {
		msgs, next, deleted, err := w.rdb.XAutoClaimWithDeleted(ctx, &redis.XAutoClaimArgs{
			Stream: w.stream, Group: w.cfg.Group, Consumer: w.cfg.Consumer,
			MinIdle: minIdle, Start: start, Count: int64(w.cfg.BatchSize),
		}).Result()
		if err != nil {
			if ctx.Err() != nil {
				return total, ctx.Err()
			}
			w.opFailed(ctx, opClaim, fmt.Errorf("claim pending entries of %s: %w", w.stream, err))
			continue
		}
		if err := w.ackDeleted(ctx, deleted); err != nil {
			w.opFailed(ctx, opClaim, err)
			continue
		}
		if len(msgs) > 0 {
			total += len(msgs)
			w.d.m.reclaimed.Add(float64(len(msgs)))
			if err := w.handleClaimed(ctx, msgs, lateBefore); err != nil {
				return total, err
			}
		}
		if next == "0-0" || next == "" {
			return total, nil
		}
		start = next
	}
}

func (w *worker) handleClaimed(ctx context.Context, msgs []redis.XMessage, lateBefore string) error {
	for {
		counts, err := w.deliveries(ctx, msgs)
		if err == nil {
			return w.handle(ctx, &batch{msgs: msgs, counts: counts, lateBefore: lateBefore})
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.opFailed(ctx, opClaim, err)
	}
}

// ackDeleted acknowledges entries that were deleted from the stream while
// pending; XAUTOCLAIM already took them out of the pending list on Redis 7.
func (w *worker) ackDeleted(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := w.rdb.XAck(ctx, w.stream, w.cfg.Group, ids...).Err(); err != nil {
		return fmt.Errorf("acknowledge %d deleted entries of %s: %w", len(ids), w.stream, err)
	}
	w.log.Info("acknowledged entries deleted while pending", logCount, len(ids))
	return nil
}

// housekeeping runs every ClaimInterval while the lease is held: it claims
// entries left idle longer than ClaimIdle by other consumers, a safety net
// that normal operation never needs, and removes idle consumers.
func (w *worker) housekeeping(ctx context.Context) error {
	held, err := w.rdb.Get(ctx, w.lease).Result()
	if err != nil && err != redis.Nil {
		w.d.m.errors.WithLabelValues("housekeeping").Inc()
		w.log.Warn("check lease before housekeeping", logErr, err)
		return nil
	}
	if held != w.d.owner {
		return ErrLeaseLost
	}
	// The claim takes this consumer's entries too: those whose
	// acknowledgement is held are appended, and one idle longer than
	// ClaimIdle (a batch retried that long) would be appended again as a
	// late entry, without the source-id check. Acknowledge them first;
	// if that fails, claim at the next round.
	if err := w.flushAcks(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.d.m.errors.WithLabelValues("housekeeping").Inc()
		w.log.Warn("acknowledge before claiming", logErr, err)
		return nil
	}
	n, err := w.claim(ctx, w.cfg.ClaimIdle, w.hw)
	if err != nil {
		return err
	}
	if n > 0 {
		w.log.Warn("claimed idle entries of other consumers", logCount, n)
	}
	w.removeIdleConsumers(ctx)
	return nil
}

// removeIdleConsumers deletes consumers of the group that have nothing
// pending and were idle longer than ConsumerIdleTimeout: dispatchers that
// restarted under a new name. One with pending entries is never deleted
// (that would throw its entries away); the script checks this atomically.
func (w *worker) removeIdleConsumers(ctx context.Context) {
	cons, err := w.rdb.XInfoConsumers(ctx, w.stream, w.cfg.Group).Result()
	if err != nil {
		w.d.m.errors.WithLabelValues("housekeeping").Inc()
		w.log.Warn("list consumers", logErr, err)
		return
	}
	for _, c := range cons {
		if c.Name == w.cfg.Consumer || c.Pending > 0 || c.Idle < w.cfg.ConsumerIdleTimeout {
			continue
		}
		keys := []string{w.stream, w.lease}
		n, err := delConsumerScript.Run(ctx, w.rdb, keys, w.d.owner, w.cfg.Group, c.Name).Int()
		if err != nil {
			w.d.m.errors.WithLabelValues("housekeeping").Inc()
			w.log.Warn("remove idle consumer", logConsumer, c.Name, logErr, err)
			return
		}
		if n == 1 {
			w.log.Info("removed idle consumer", logConsumer, c.Name, "idle", c.Idle)
		}
	}
}
