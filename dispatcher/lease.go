package dispatcher

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// holder keeps one stream's lease: it runs the stream's worker, renews the
// lease every LeaseTTL/3, publishes the stream's lag and pending gauges,
// and when it is cancelled (shutdown, rebalance) lets the worker finish
// its batch and then releases the lease.
type holder struct {
	d      *Dispatcher
	stream string
	lease  string
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// base and validUntil say until when the lease is surely ours: LeaseTTL
	// after the last successful renewal was sent, on the monotonic clock
	// (nanoseconds since base).
	base       time.Time
	validUntil atomic.Int64
}

// newHolder holds stream's lease, taken by a SET sent at sent: the lease is
// surely ours until LeaseTTL after that, not after the reply came back.
func newHolder(parent context.Context, d *Dispatcher, stream string, sent time.Time) *holder {
	ctx, cancel := context.WithCancel(parent)
	h := &holder{
		d: d, stream: stream, lease: d.cfg.Space.Lease(stream),
		ctx: ctx, cancel: cancel, done: make(chan struct{}), base: sent,
	}
	h.validUntil.Store(int64(d.cfg.LeaseTTL))
	return h
}

// valid reports whether the lease is surely still held, by the local
// clock. After a freeze longer than the lease it is not, and the worker
// stops before reading anything.
func (h *holder) valid() bool { return int64(time.Since(h.base)) < h.validUntil.Load() }

// finished reports whether the holder has ended.
func (h *holder) finished() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *holder) run() {
	defer close(h.done)
	defer h.cancel()
	log := h.d.log.With(logStream, h.stream)
	log.Info("lease acquired")
	wctx, stopWorker := context.WithCancel(h.ctx)
	defer stopWorker()
	werr := make(chan error, 1)
	w := newWorker(h.d, h.stream)
	w.leaseValid = h.valid
	go func() { werr <- w.run(wctx) }()

	tick := time.NewTicker(h.d.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			stopWorker()
			h.finish(log, <-werr)
			h.release(log)
			return
		case err := <-werr:
			h.finish(log, err)
			h.release(log)
			return
		case <-tick.C:
			sent := time.Since(h.base)
			held, err := h.renew()
			switch {
			case err == nil && held:
				h.validUntil.Store(int64(sent + h.d.cfg.LeaseTTL))
				h.gauges()
				continue
			case err != nil && h.valid():
				h.d.m.errors.WithLabelValues("lease").Inc()
				log.Warn("renew lease failed; retrying", logErr, err)
				continue
			}
			log.Warn("lease lost", logErr, err)
			stopWorker()
			h.finish(log, <-werr)
			return
		}
	}
}

// finish logs how the worker ended and drops the stream's gauges, which the
// next holder publishes.
func (h *holder) finish(log *slog.Logger, err error) {
	switch {
	case errors.Is(err, ErrLeaseLost):
		log.Warn("lease lost; stopped reading the stream")
	case err != nil && !isStop(err):
		log.Warn("stream worker stopped", logErr, err)
	}
	h.d.m.lag.DeleteLabelValues(h.stream)
	h.d.m.pending.DeleteLabelValues(h.stream)
}

func (h *holder) renew() (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), h.d.cfg.LeaseTTL/3)
	defer cancel()
	n, err := renewScript.Run(ctx, h.d.rdb, []string{h.lease}, h.d.owner, h.d.cfg.LeaseTTL.Milliseconds()).Int()
	return n == 1, err
}

// release gives the lease up so that a standby takes over at once rather
// than after LeaseTTL.
func (h *holder) release(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, h.d.rdb, []string{h.lease}, h.d.owner).Err(); err != nil {
		log.Warn("release lease; it expires by itself", logErr, err)
		return
	}
	log.Info("lease released")
}

// gauges publishes the group's lag and pending count on this stream.
func (h *holder) gauges() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), h.d.cfg.LeaseTTL/3)
	defer cancel()
	groups, err := h.d.rdb.XInfoGroups(ctx, h.stream).Result()
	if err != nil {
		h.d.m.errors.WithLabelValues("housekeeping").Inc()
		return
	}
	for _, g := range groups {
		if g.Name == h.d.cfg.Group {
			h.d.m.lag.WithLabelValues(h.stream).Set(float64(g.Lag))
			h.d.m.pending.WithLabelValues(h.stream).Set(float64(g.Pending))
		}
	}
}
