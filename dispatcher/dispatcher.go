package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Log attribute keys.
const (
	logStream   = "stream"
	logErr      = "err"
	logCount    = "count"
	logID       = "id"
	logConsumer = "consumer"
)

// Dispatcher moves events from the ingest streams into feeds. Create it
// with New, start it with Run, stop it by cancelling Run's context or with
// Close. Its methods are safe for concurrent use.
type Dispatcher struct {
	rdb     redis.UniversalClient
	cfg     Config
	log     *slog.Logger
	app     *feed.Appender
	streams []string
	owner   string // lease owner and heartbeat member: consumer name plus a random tag
	m       *metrics

	mu      sync.Mutex
	holders map[string]*holder // streams whose lease this dispatcher holds
	holding sync.WaitGroup     // every holder goroutine, draining ones included
	cancel  context.CancelFunc // cancels the running Run
	done    chan struct{}      // closed when the running Run returns
	closed  bool
}

// New returns a Dispatcher reading the ingest streams of cfg. It does not
// touch Redis; Run does.
func New(rdb redis.UniversalClient, cfg Config) (*Dispatcher, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrConfig)
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		rdb:     rdb,
		cfg:     cfg,
		log:     cfg.Logger,
		app:     feed.NewAppender(rdb, cfg.Append),
		streams: cfg.Space.IngestStreams(cfg.Partitions),
		owner:   cfg.Consumer + "/" + randomTag(),
		m:       newMetrics(),
		holders: make(map[string]*holder),
	}
	if _, isCluster := rdb.(*redis.ClusterClient); isCluster {
		for _, s := range d.streams {
			if keys.Slot(s) != keys.Slot(cfg.Space.Lease(s)) {
				return nil, fmt.Errorf("%w: %s; on Redis Cluster set partitions to 2 or more", ErrCrossSlot, s)
			}
		}
	}
	return d, nil
}

func randomTag() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Collectors returns the dispatcher's Prometheus collectors, for the
// caller to register.
func (d *Dispatcher) Collectors() []prometheus.Collector { return d.m.collectors() }

// Consumer returns the dispatcher's consumer name in the group.
func (d *Dispatcher) Consumer() string { return d.cfg.Consumer }

// Streams returns the ingest streams whose lease the dispatcher holds now,
// sorted.
func (d *Dispatcher) Streams() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, 0, len(d.holders))
	for s, h := range d.holders {
		if !h.finished() {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Run creates the consumer groups if needed and then dispatches until ctx
// is cancelled. It returns nil after a shutdown in which every batch in
// flight was appended and acknowledged and every lease released; it
// returns an error only when it cannot start (Redis unreachable, a script
// that does not load). Redis failures while running are logged and retried.
func (d *Dispatcher) Run(ctx context.Context) error {
	ctx, err := d.start(ctx)
	if err != nil {
		return err
	}
	defer d.stop()
	if err := d.setup(ctx); err != nil {
		return err
	}
	d.log.Info("dispatcher started", logConsumer, d.cfg.Consumer, "streams", len(d.streams), "group", d.cfg.Group)
	tick := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		d.balance(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (d *Dispatcher) start(ctx context.Context) (context.Context, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return nil, ErrClosed
	case d.done != nil:
		return nil, ErrRunning
	}
	ctx, d.cancel = context.WithCancel(ctx)
	d.done = make(chan struct{})
	return ctx, nil
}

// stop ends every holder (each finishes its batch and releases its lease),
// leaves the set of live dispatchers and marks Run as returned.
func (d *Dispatcher) stop() {
	d.mu.Lock()
	for s, h := range d.holders {
		h.cancel()
		delete(d.holders, s)
	}
	d.mu.Unlock()
	d.holding.Wait()
	d.m.leases.Set(0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := d.rdb.ZRem(ctx, d.cfg.Space.Dispatchers(), d.owner).Err(); err != nil {
		d.log.Warn("leave the live dispatcher set", logErr, err)
	}
	d.mu.Lock()
	d.cancel()
	close(d.done)
	d.done, d.cancel = nil, nil
	d.mu.Unlock()
	d.log.Info("dispatcher stopped", logConsumer, d.cfg.Consumer)
}

// Close stops a running Run, waits until it has returned (batches in flight
// acknowledged, leases released) and makes later Runs fail with ErrClosed.
// It does not close the Redis client. It is safe to call more than once.
func (d *Dispatcher) Close() error {
	d.mu.Lock()
	d.closed = true
	cancel, done := d.cancel, d.done
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// setup creates every stream's consumer group (reading from the start, so
// nothing published before the first dispatcher ran is skipped) and loads
// the feed script.
func (d *Dispatcher) setup(ctx context.Context) error {
	for _, s := range d.streams {
		if err := d.ensureGroup(ctx, s); err != nil {
			return err
		}
	}
	return d.app.Load(ctx)
}

func (d *Dispatcher) ensureGroup(ctx context.Context, stream string) error {
	err := d.rdb.XGroupCreateMkStream(ctx, stream, d.cfg.Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", d.cfg.Group, stream, err)
	}
	return nil
}

// balance heartbeats, then gives up or takes leases so that this
// dispatcher holds at most its fair share: ceil(streams / live dispatchers).
func (d *Dispatcher) balance(ctx context.Context) {
	live, err := d.heartbeat(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.m.errors.WithLabelValues("heartbeat").Inc()
			d.log.Warn("heartbeat failed; keeping the leases held", logErr, err)
		}
		return
	}
	share := (len(d.streams) + live - 1) / live
	held := d.reap()
	for len(held) > share {
		d.drop(held[len(held)-1])
		held = held[:len(held)-1]
	}
	if len(held) < share && ctx.Err() == nil {
		d.acquire(ctx, share-len(held))
	}
	d.m.leases.Set(float64(len(d.Streams())))
}

// heartbeat records this dispatcher as live and returns how many are.
func (d *Dispatcher) heartbeat(ctx context.Context) (int, error) {
	staleMs := 3 * (d.cfg.LeaseTTL / 3).Milliseconds()
	n, err := heartbeatScript.Run(ctx, d.rdb, []string{d.cfg.Space.Dispatchers()}, d.owner, staleMs).Int()
	if err != nil {
		return 0, fmt.Errorf("heartbeat: %w", err)
	}
	return max(n, 1), nil
}

// reap forgets holders that ended (lease lost) and returns the streams
// still held, in the configured order.
func (d *Dispatcher) reap() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var held []string
	for _, s := range d.streams {
		h, ok := d.holders[s]
		switch {
		case !ok:
		case h.finished():
			delete(d.holders, s)
		default:
			held = append(held, s)
		}
	}
	return held
}

// drop gives a stream up: its holder finishes the batch in flight and
// releases the lease in the background.
func (d *Dispatcher) drop(stream string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.holders[stream]; ok {
		d.log.Info("giving up stream for balance", logStream, stream)
		h.cancel()
		delete(d.holders, stream)
	}
}

// acquire tries to take up to n free leases, starting at a stream that
// depends on the owner so that dispatchers starting together spread out.
func (d *Dispatcher) acquire(ctx context.Context, n int) {
	free, err := d.freeStreams(ctx)
	if err != nil {
		d.m.errors.WithLabelValues("lease").Inc()
		d.log.Warn("list free leases", logErr, err)
		return
	}
	for _, s := range free {
		if n == 0 {
			return
		}
		sent := time.Now()
		ok, err := d.rdb.SetNX(ctx, d.cfg.Space.Lease(s), d.owner, d.cfg.LeaseTTL).Result()
		if err != nil {
			d.m.errors.WithLabelValues("lease").Inc()
			d.log.Warn("acquire lease", logStream, s, logErr, err)
			return
		}
		if ok {
			d.hold(ctx, s, sent)
			n--
		}
	}
}

// freeStreams returns the streams that nobody holds, in one round trip.
func (d *Dispatcher) freeStreams(ctx context.Context) ([]string, error) {
	d.mu.Lock()
	var cands []string
	h := fnv.New32a()
	h.Write([]byte(d.owner))
	off := int(h.Sum32() % uint32(len(d.streams)))
	for i := range d.streams {
		s := d.streams[(off+i)%len(d.streams)]
		if _, held := d.holders[s]; !held {
			cands = append(cands, s)
		}
	}
	d.mu.Unlock()
	cmds := make([]*redis.IntCmd, len(cands))
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range cands {
			cmds[i] = p.Exists(ctx, d.cfg.Space.Lease(s))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var free []string
	for i, c := range cmds {
		if c.Val() == 0 {
			free = append(free, cands[i])
		}
	}
	return free, nil
}

// hold starts the holder of a stream whose lease was just acquired by a
// SET sent at sent.
func (d *Dispatcher) hold(ctx context.Context, stream string, sent time.Time) {
	h := newHolder(ctx, d, stream, sent)
	d.mu.Lock()
	d.holders[stream] = h
	d.mu.Unlock()
	d.holding.Add(1)
	go func() {
		defer d.holding.Done()
		h.run()
	}()
}

// isStop reports errors that mean "stop quietly".
func isStop(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, ErrLeaseLost)
}
