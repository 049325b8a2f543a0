package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by a Subscriber's methods after Close.
var ErrClosed = errors.New("pubsub: subscriber closed")

// Subscriber listens on channels. Receive returns *redis.Message for each
// message and *redis.Subscription for each confirmation ("subscribe" on one
// Redis, "ssubscribe" on a cluster); after a reconnect or a move to another
// shard the confirmation comes again.
type Subscriber interface {
	Subscribe(ctx context.Context, channels ...string) error
	Unsubscribe(ctx context.Context, channels ...string) error
	Receive(ctx context.Context) (any, error)
	Close() error
}

// Config shapes a Subscriber. Zero values are the defaults.
type Config struct {
	// Logger gets a warning for each shard connection lost; nil discards.
	Logger *slog.Logger
	// OnShardError is called for each shard connection lost or MOVED reply,
	// for a metric; nil means none.
	OnShardError func(error)
}

// NewSubscriber returns a Subscriber on rdb: go-redis's own PubSub on one
// Redis (it reconnects and resubscribes by itself), or a sharded one on a
// cluster.
func NewSubscriber(rdb redis.UniversalClient, cfg Config) Subscriber {
	cl, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Subscribe(context.Background()) // no channel yet: connects on first use
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnShardError == nil {
		cfg.OnShardError = func(error) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharded{
		cl: cl, cfg: cfg, ctx: ctx, cancel: cancel,
		out:    make(chan any, 64),
		wake:   make(chan struct{}, 1),
		want:   make(map[string]*shard),
		shards: make(map[string]*shard),
	}
	s.wg.Add(1)
	go s.placer()
	return s
}

// sharded keeps one PubSub per master that owns a wanted channel's slot.
// Lock order: sharded.mu before go-redis's PubSub locks.
type sharded struct {
	cl     *redis.ClusterClient
	cfg    Config
	ctx    context.Context // ends at Close; every goroutine below watches it
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    chan any      // messages and confirmations, to Receive
	wake   chan struct{} // tells the placer there are channels to place

	mu     sync.Mutex
	closed bool
	want   map[string]*shard // wanted channels; nil while not placed
	shards map[string]*shard // live shards by master address
}

// shard is one connection to one master.
type shard struct {
	addr string
	ps   *redis.PubSub
}

func (s *sharded) Subscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, ch := range channels {
		s.want[ch] = nil
		s.placeLocked(ctx, ch, nil)
	}
	return nil
}

func (s *sharded) Unsubscribe(ctx context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var first error
	for _, ch := range channels {
		sh, ok := s.want[ch]
		delete(s.want, ch)
		if ok && sh != nil {
			if err := sh.ps.SUnsubscribe(ctx, ch); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

func (s *sharded) Receive(ctx context.Context) (any, error) {
	select {
	case m := <-s.out:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
}

// Close closes every shard connection and waits for the goroutines. Safe
// to call twice.
func (s *sharded) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	for _, sh := range s.shards {
		_ = sh.ps.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// placeLocked subscribes ch on the master that owns its slot, or leaves it
// to the placer when that master cannot be found or written to now. Masters
// in failed (if not nil) are not tried again; one that fails is added.
func (s *sharded) placeLocked(ctx context.Context, ch string, failed map[string]bool) {
	node, err := s.cl.MasterForKey(ctx, ch)
	if err != nil {
		s.later()
		return
	}
	addr := node.Options().Addr
	if failed[addr] {
		return
	}
	sh := s.shards[addr]
	if sh == nil {
		sh = &shard{addr: addr, ps: node.SSubscribe(s.ctx)}
		s.shards[addr] = sh
		s.wg.Add(1)
		go s.receive(sh)
	}
	if err := sh.ps.SSubscribe(ctx, ch); err != nil {
		if failed != nil {
			failed[addr] = true
		}
		s.dropLocked(sh, err)
		return
	}
	s.want[ch] = sh
}

// later wakes the placer.
func (s *sharded) later() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dropLocked forgets a shard whose connection failed or which no longer
// owns a slot: its channels wait for the placer, which asks the cluster
// where they live now.
func (s *sharded) dropLocked(sh *shard, err error) {
	if s.shards[sh.addr] != sh {
		return
	}
	delete(s.shards, sh.addr)
	_ = sh.ps.Close()
	moved := 0
	for ch, at := range s.want {
		if at == sh {
			s.want[ch] = nil
			moved++
		}
	}
	s.cfg.OnShardError(err)
	s.cfg.Logger.Warn("pubsub shard lost; moving its channels", "shard", sh.addr, "channels", moved, "err", err)
	s.cl.ReloadState(s.ctx)
	s.later()
}

// receive reads one shard until its connection fails or Close.
func (s *sharded) receive(sh *shard) {
	defer s.wg.Done()
	for {
		m, err := sh.ps.Receive(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			s.mu.Lock()
			s.dropLocked(sh, err)
			s.mu.Unlock()
			return
		}
		if sub, ok := m.(*redis.Subscription); ok && sub.Kind == "sunsubscribe" && s.movedAway(sh, sub.Channel) {
			continue
		}
		select {
		case s.out <- m:
		case <-s.ctx.Done():
			return
		}
	}
}

// movedAway handles an sunsubscribe for a channel still wanted on sh: Redis
// sends one unasked when the slot leaves the node. The channel is placed
// again, wherever its slot is now.
func (s *sharded) movedAway(sh *shard, ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.want[ch]; !ok || at != sh {
		return false // asked for (or already moved): pass it on
	}
	s.want[ch] = nil
	s.cl.ReloadState(s.ctx)
	s.later()
	return true
}

// placer places the channels left unplaced, with a backoff while the
// cluster cannot say where they live.
func (s *sharded) placer() {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		}
		for {
			if s.placeWaiting() {
				backoff = 50 * time.Millisecond
				break
			}
			t := time.NewTimer(backoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// placeWaiting tries every unplaced channel once and reports whether none
// is left.
func (s *sharded) placeWaiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Second)
	defer cancel()
	failed := map[string]bool{}
	for ch, sh := range s.want {
		if sh == nil {
			s.placeLocked(ctx, ch, failed)
		}
	}
	// drop the wake-ups this round's failures sent: the backoff retries
	select {
	case <-s.wake:
	default:
	}
	for _, sh := range s.want {
		if sh == nil {
			return false
		}
	}
	return true
}
