package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// ApplyFunc receives every new valid document; (*Limiter).Apply is one.
type ApplyFunc func(*Document) error

// WatcherConfig configures a Watcher. Zero values are the documented
// defaults.
type WatcherConfig struct {
	Logger  *slog.Logger // nil discards
	Metrics *Metrics     // nil means NewMetrics(); share the Limiter's
	// Fallback is how often the stored document is read even without an
	// announcement; 0 means 30s.
	Fallback time.Duration
}

// Watcher keeps one edge's rules in step with the Store. It applies the
// stored document when it starts (once subscribed, so no change can fall
// in between), on every announcement on Space.RulesChannel(), after every
// Pub/Sub reconnect, and every Fallback. A change therefore reaches a
// connected edge in milliseconds. An invalid stored document (written
// around the Store) is logged with its problems and counted, and the rules
// in force stay; so do they when the document disappears from Redis (apply
// "rules: []" to turn every limit off).
type Watcher struct {
	store *Store
	apply ApplyFunc
	cfg   WatcherConfig

	// Owned by Run.
	applied    bool
	appliedVer int64
	appliedDoc []byte
	badVer     int64
	badDoc     []byte
	failing    bool
	absent     bool

	synced func() // test hook: called after every Sync
}

// NewWatcher returns a Watcher that passes documents from store to apply.
func NewWatcher(store *Store, apply ApplyFunc, cfg WatcherConfig) *Watcher {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Fallback <= 0 {
		cfg.Fallback = 30 * time.Second
	}
	return &Watcher{store: store, apply: apply, cfg: cfg}
}

// Run watches until ctx ends, then returns nil. Redis being unreachable is
// not an error: Run logs it, retries and catches up when Redis is back.
func (w *Watcher) Run(ctx context.Context) error {
	ps := w.store.rdb.Subscribe(ctx, w.store.space.RulesChannel())
	// A blocked receive does not watch ctx: closing the PubSub ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		if stop() {
			_ = ps.Close()
		}
	}()
	next := time.Now().Add(w.cfg.Fallback)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, max(time.Until(next), time.Millisecond))
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			backoff = 100 * time.Millisecond
			switch msg.(type) {
			case *redis.Subscription, *redis.Message: // (re)subscribed, or announced
				if w.failing {
					w.cfg.Logger.Info("rules watcher: Redis Pub/Sub is back")
				}
				w.Sync(ctx)
				next = time.Now().Add(w.cfg.Fallback)
			}
		case isTimeout(err):
			w.Sync(ctx)
			next = time.Now().Add(w.cfg.Fallback)
		default:
			if !w.failing {
				w.cfg.Logger.Warn("rules watcher: Redis Pub/Sub failed; retrying", "err", err)
				w.failing = true
			}
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	}
	return nil
}

// Sync reads the stored document once and applies it if it changed. Run
// calls it; it is exported for start-up code that wants the rules in force
// before serving. It is not safe to call concurrently with Run.
func (w *Watcher) Sync(ctx context.Context) {
	if w.synced != nil {
		defer w.synced()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := w.store.Get(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		if w.applied && w.appliedVer != 0 && !w.absent {
			w.cfg.Logger.Warn("no rules document in Redis; keeping the rules in force", "version", w.appliedVer)
		}
		w.applied, w.absent = true, true
		return
	case err != nil:
		w.cfg.Metrics.reloadErrors.Inc()
		if !w.failing {
			w.cfg.Logger.Warn("rules watcher: cannot read the rules; keeping the rules in force", "err", err)
			w.failing = true
		}
		return
	}
	w.failing, w.absent = false, false
	if w.applied && st.Meta.Version == w.appliedVer && bytes.Equal(st.YAML, w.appliedDoc) {
		return
	}
	if st.Meta.Version == w.badVer && bytes.Equal(st.YAML, w.badDoc) {
		return // already reported
	}
	doc, err := ParseRules(st.YAML)
	if err == nil {
		doc.Meta = st.Meta
		err = w.apply(doc)
	}
	if err != nil {
		w.cfg.Metrics.reloadErrors.Inc()
		w.badVer, w.badDoc = st.Meta.Version, st.YAML
		w.cfg.Logger.Error("stored rules refused; keeping the rules in force", "version", st.Meta.Version,
			"updated_by", st.Meta.UpdatedBy, "err", err)
		return
	}
	w.applied, w.appliedVer, w.appliedDoc = true, st.Meta.Version, st.YAML
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
