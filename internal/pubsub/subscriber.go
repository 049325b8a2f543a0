package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by a Subscriber's methods after Close.
var ErrClosed = errors.New("pubsub: subscriber closed")

// errSilent is a shard that answered no PING in three intervals.
var errSilent = errors.New("pubsub: shard answered no PING")

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
	// OnShardError is called for each shard connection given up (closed,
	// silent, failed to write) and each MOVED reply, for a metric; nil
	// means none.
	OnShardError func(error)
	// PingInterval is how often each shard connection is sent a PING; one
	// that answers nothing for three intervals is given up and its
	// channels placed again. 0 means 5s.
	PingInterval time.Duration
}

// opTimeout is the context deadline of one SSUBSCRIBE, SUNSUBSCRIBE or
// PING write and of one lookup of a channel's master. go-redis does not
// apply context deadlines to socket reads and writes unless the client
// has ContextTimeoutEnabled: a write to a master that hangs is bounded by
// the client's dial and write timeouts instead, and blocks only that
// shard's writer.
const opTimeout = 2 * time.Second

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
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sharded{
		cl: cl, cfg: cfg, ctx: ctx, cancel: cancel,
		out:    make(chan any, 64),
		wake:   make(chan struct{}, 1),
		want:   make(map[string]*shard),
		hint:   make(map[string]hint),
		shards: make(map[string]*shard),

		quarantine: make(map[string]time.Time),
	}
	s.wg.Add(1)
	go s.placer()
	return s
}

// sharded keeps one connection per master that owns a wanted channel's
// slot. No network call is made under mu: each shard has a writer
// goroutine that sends its queued SSUBSCRIBEs and SUNSUBSCRIBEs in order,
// and a reader goroutine; the placer looks masters up outside the lock.
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
	hint   map[string]hint   // where Redis said a channel lives (MOVED), until the slot map agrees
	shards map[string]*shard // live shards by master address
	// masters given up lately, until when: the slot map may still name
	// a dead master until a replica is promoted, and connecting to it
	// again would only block a writer for the client's timeouts
	quarantine map[string]time.Time
}

// quarantineFor is how long a master whose shard was given up gets no new
// subscriptions while the slot map still names it. A promoted replica
// shows in go-redis's slot map some 3-6 s after a master froze (its
// reloads may first wait out the frozen node); a master that was only
// slow gets its channels back after this.
const quarantineFor = 15 * time.Second

// shard is one connection to one master. ops and unsubs are guarded by
// sharded.mu.
type shard struct {
	addr  string
	ps    *redis.PubSub
	kick  chan struct{} // tells the writer there are ops
	heard chan struct{} // the reader heard something (buffered 1)
	quit  chan struct{} // closed when the shard is given up
	// delivering is set while the reader waits for the consumer to take a
	// message: it reads nothing then, so the shard's silence says nothing
	// about Redis, and the writer does not count it.
	delivering atomic.Bool

	ops    []op
	unsubs map[string]int // our SUNSUBSCRIBEs whose confirmation is still to come
	gone   bool
}

// hint is the master a MOVED reply named, believed until the slot map
// agrees or until it is too old to trust (that master may be gone too).
type hint struct {
	addr  string
	until time.Time
}

type op struct {
	subscribe bool
	channel   string
}

func (s *sharded) Subscribe(ctx context.Context, channels ...string) error {
	addrs := make([]string, len(channels))
	nodes := make([]*redis.Client, len(channels))
	for i, ch := range channels {
		nodes[i], addrs[i] = s.master(ctx, ch)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for i, ch := range channels {
		s.want[ch] = nil
		delete(s.hint, ch)
		if nodes[i] == nil || s.quarantinedLocked(addrs[i]) {
			s.later()
			continue
		}
		s.placeLocked(ch, addrs[i], nodes[i])
	}
	return nil
}

// quarantinedLocked reports whether addr was given up less than
// quarantineFor ago.
func (s *sharded) quarantinedLocked(addr string) bool {
	until, ok := s.quarantine[addr]
	if ok && time.Now().After(until) {
		delete(s.quarantine, addr)
		return false
	}
	return ok
}

func (s *sharded) Unsubscribe(_ context.Context, channels ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	for _, ch := range channels {
		sh, ok := s.want[ch]
		delete(s.want, ch)
		delete(s.hint, ch)
		if ok && sh != nil {
			sh.unsubs[ch]++
			sh.queueLocked(op{false, ch})
		}
	}
	return nil
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

// master looks up the master of ch's slot in the client's slot map; nil
// when it cannot be found now.
func (s *sharded) master(ctx context.Context, ch string) (*redis.Client, string) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	node, err := s.cl.MasterForKey(ctx, ch)
	if err != nil {
		return nil, ""
	}
	return node, node.Options().Addr
}

// placeLocked puts ch on the shard of addr, starting it if need be, and
// queues its SSUBSCRIBE.
func (s *sharded) placeLocked(ch, addr string, node *redis.Client) {
	sh := s.shards[addr]
	if sh == nil {
		sh = &shard{addr: addr, ps: node.SSubscribe(s.ctx), kick: make(chan struct{}, 1),
			heard: make(chan struct{}, 1), quit: make(chan struct{}), unsubs: map[string]int{}}
		s.shards[addr] = sh
		s.wg.Add(2)
		go s.writer(sh)
		go s.reader(sh)
	}
	s.want[ch] = sh
	delete(s.hint, ch)
	sh.queueLocked(op{true, ch})
}

func (sh *shard) queueLocked(o op) {
	sh.ops = append(sh.ops, o)
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// later wakes the placer.
func (s *sharded) later() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// drop gives a shard up: its connection is closed and its channels wait
// for the placer, which asks the cluster where they live now.
func (s *sharded) drop(sh *shard, err error) {
	s.mu.Lock()
	if sh.gone || s.closed {
		s.mu.Unlock()
		return
	}
	sh.gone = true
	close(sh.quit)
	if s.shards[sh.addr] == sh {
		delete(s.shards, sh.addr)
	}
	s.quarantine[sh.addr] = time.Now().Add(quarantineFor)
	moved := 0
	for ch, at := range s.want {
		if at == sh {
			s.want[ch] = nil
			moved++
		}
	}
	s.mu.Unlock()
	_ = sh.ps.Close()
	s.cfg.OnShardError(err)
	s.cfg.Logger.Warn("pubsub shard lost; moving its channels", "shard", sh.addr, "channels", moved, "err", err)
	s.cl.ReloadState(s.ctx)
	s.later()
}

// writer sends a shard's queued commands in order, and a PING every
// interval; it gives the shard up when a write fails or the shard has
// answered nothing for three intervals.
func (s *sharded) writer(sh *shard) {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.PingInterval)
	defer tick.Stop()
	silent := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-sh.quit:
			return
		case <-sh.heard:
			silent = 0
		case <-tick.C:
			select {
			case <-sh.heard:
				silent = 0
			default:
				silent++
			}
			if sh.delivering.Load() {
				silent = 0 // a slow consumer, not a silent Redis
			}
			if silent >= 3 {
				s.drop(sh, errSilent)
				return
			}
			if err := s.write(sh, func(ctx context.Context) error { return sh.ps.Ping(ctx) }); err != nil {
				s.drop(sh, err)
				return
			}
		case <-sh.kick:
			s.mu.Lock()
			ops := sh.ops
			sh.ops = nil
			gone := sh.gone
			s.mu.Unlock()
			if gone {
				return
			}
			for _, o := range ops {
				err := s.write(sh, func(ctx context.Context) error {
					if o.subscribe {
						return sh.ps.SSubscribe(ctx, o.channel)
					}
					return sh.ps.SUnsubscribe(ctx, o.channel)
				})
				if err != nil {
					s.drop(sh, err)
					return
				}
			}
		}
	}
}

// write runs one command on the shard's connection within opTimeout.
func (s *sharded) write(sh *shard, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(s.ctx, opTimeout)
	defer cancel()
	return fn(ctx)
}

// reader reads one shard until its connection fails or Close. A MOVED
// reply moves that slot's channels and keeps the connection.
func (s *sharded) reader(sh *shard) {
	defer s.wg.Done()
	for {
		m, err := sh.ps.Receive(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			if slot, addr, ok := movedTo(err); ok {
				s.moved(sh, slot, addr, err)
				continue
			}
			s.drop(sh, err)
			return
		}
		select {
		case sh.heard <- struct{}{}:
		default:
		}
		switch v := m.(type) {
		case *redis.Pong:
			continue
		case *redis.Subscription:
			if v.Kind == "sunsubscribe" && s.movedAway(sh, v.Channel) {
				continue
			}
		}
		select {
		case s.out <- m:
			continue
		default:
		}
		sh.delivering.Store(true)
		select {
		case s.out <- m:
			sh.delivering.Store(false)
		case <-s.ctx.Done():
			return
		}
	}
}

// movedTo parses "MOVED <slot> <host:port>".
func movedTo(err error) (slot int, addr string, ok bool) {
	var re redis.Error
	if !errors.As(err, &re) {
		return 0, "", false
	}
	f := strings.Fields(re.Error())
	if len(f) != 3 || f[0] != "MOVED" {
		return 0, "", false
	}
	slot, perr := strconv.Atoi(f[1])
	return slot, f[2], perr == nil
}

// moved handles a MOVED reply to an SSUBSCRIBE: the channels of that slot
// on sh wait for the placer, which subscribes them once the client's slot
// map agrees with Redis that addr owns the slot.
func (s *sharded) moved(sh *shard, slot int, addr string, err error) {
	s.mu.Lock()
	for ch, at := range s.want {
		if at == sh && keys.Slot(ch) == slot {
			s.want[ch] = nil
			s.hint[ch] = hint{addr, time.Now().Add(10 * time.Second)}
		}
	}
	s.mu.Unlock()
	s.cfg.OnShardError(err)
	s.cl.ReloadState(s.ctx)
	s.later()
}

// movedAway handles an sunsubscribe for ch on sh. It passes on (returns
// false) the confirmation of one of our SUNSUBSCRIBEs; any other one is
// Redis telling us the slot left the node, and the channel is placed
// again, wherever its slot is now.
func (s *sharded) movedAway(sh *shard, ch string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh.unsubs[ch] > 0 {
		if sh.unsubs[ch]--; sh.unsubs[ch] == 0 {
			delete(sh.unsubs, ch)
		}
		return false
	}
	if at, ok := s.want[ch]; !ok || at != sh {
		return false
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
// is left. A channel Redis said lives elsewhere (MOVED) waits until the
// slot map says so too.
func (s *sharded) placeWaiting() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return true
	}
	var waiting []string
	for ch, sh := range s.want {
		if sh == nil {
			waiting = append(waiting, ch)
		}
	}
	s.mu.Unlock()
	if len(waiting) == 0 {
		return true
	}
	type found struct {
		node *redis.Client
		addr string
	}
	at := make(map[string]found, len(waiting))
	stale := false
	for _, ch := range waiting {
		node, addr := s.master(s.ctx, ch)
		if node == nil {
			return false // the cluster cannot be asked now: back off
		}
		at[ch] = found{node, addr}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true // Close ran during the lookups: start no shard
	}
	left := false
	for ch, f := range at {
		if sh, ok := s.want[ch]; !ok || sh != nil {
			continue // unsubscribed or placed meanwhile
		}
		if h, ok := s.hint[ch]; ok && h.addr != f.addr && time.Now().Before(h.until) {
			stale, left = true, true
			continue
		}
		if s.quarantinedLocked(f.addr) {
			stale, left = true, true
			continue
		}
		s.placeLocked(ch, f.addr, f.node)
	}
	if stale {
		s.cl.ReloadState(s.ctx)
	}
	return !left
}
