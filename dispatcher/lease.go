package dispatcher

import (
	"context"
	"log/slog"
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
}

func newHolder(d *Dispatcher, stream string, parent context.Context) *holder {
	ctx, cancel := context.WithCancel(parent)
	return &holder{
		d: d, stream: stream, lease: d.cfg.Space.Lease(stream),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
}

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
	acquired := time.Now()
	wctx, stopWorker := context.WithCancel(h.ctx)
	defer stopWorker()
	werr := make(chan error, 1)
	go func() { werr <- newWorker(h.d, h.stream).run(wctx) }()

	validUntil := acquired.Add(h.d.cfg.LeaseTTL)
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
			sent := time.Now()
			held, err := h.renew()
			switch {
			case err == nil && held:
				validUntil = sent.Add(h.d.cfg.LeaseTTL)
				h.gauges()
				continue
			case err != nil && time.Now().Before(validUntil):
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
	if err != nil && !errorsIsStop(err) {
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
