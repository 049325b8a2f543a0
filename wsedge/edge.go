package wsedge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Errors of this package.
var (
	ErrNoVerifier = errors.New("wsedge: config needs a Verifier")
	ErrNoStore    = errors.New("wsedge: config needs a Store")
	ErrClosed     = errors.New("wsedge: edge is shut down")
)

// Edge is one WebSocket edge node. Serve it as an http.Handler.
type Edge struct {
	cfg   Config
	rdb   redis.UniversalClient
	store *store.Store
	log   *slog.Logger
	m     *metrics
	hub   *hub
	inbox *inbox.Inbox
	mux   *http.ServeMux

	ctx    context.Context // background work; cancelled by Shutdown
	cancel context.CancelFunc

	flushCtx  context.Context // the periodic copy of ACK positions to Redis
	stopFlush context.CancelFunc
	flushMu   sync.Mutex     // one copy at a time
	wg        sync.WaitGroup // every goroutine the Edge starts
	closes    sync.WaitGroup // close handshakes and session readers

	writeQ *workQueue[*session]
	jobQ   *workQueue[*cursor]
	goneQ  *workQueue[gone] // presence entries of ended sessions (reaper.go)

	mu       sync.Mutex
	sessions map[*session]struct{}
	devices  map[deviceKey]*session
	perUser  map[userKey]int
	perIP    map[string]int

	onlineMu    sync.Mutex // one writeOnline at a time
	unreadMu    sync.Mutex
	unreadAgain map[userKey]bool    // users being counted (unread.go): true = count again
	perTenant   map[string]int      // sessions per tenant (online.go)
	onlineDirty map[string]struct{} // tenants whose count changed since written

	timersMu sync.Mutex
	timers   map[*time.Timer]struct{}

	limiter  *ipLimiter
	setups   chan struct{} // a token per set-up running (Config.MaxSetups)
	auditLim auditLimiter
	started  atomic.Bool
	draining atomic.Bool
	stopOnce sync.Once
	seq      atomic.Uint64
}

type userKey struct{ tenant, user string }
type deviceKey struct{ tenant, user, device string }

// New builds an Edge; Start starts its background work.
func New(rdb redis.UniversalClient, cfg Config) (*Edge, error) {
	if cfg.Verifier == nil {
		return nil, ErrNoVerifier
	}
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	cfg.fill()
	if cfg.EdgeID == "" {
		host, _ := os.Hostname()
		cfg.EdgeID = host + "-" + strconv.Itoa(os.Getpid())
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Edge{
		cfg: cfg, rdb: rdb, store: cfg.Store, log: cfg.Logger.With("edge", cfg.EdgeID),
		m: newMetrics(), ctx: ctx, cancel: cancel,
		writeQ: newWorkQueue[*session](), jobQ: newWorkQueue[*cursor](), goneQ: newWorkQueue[gone](),
		sessions: make(map[*session]struct{}), devices: make(map[deviceKey]*session), perUser: make(map[userKey]int), perIP: make(map[string]int),
		perTenant: make(map[string]int), onlineDirty: make(map[string]struct{}), unreadAgain: make(map[userKey]bool),
		limiter: newIPLimiter(cfg.ConnectRatePerIP), timers: make(map[*time.Timer]struct{}),
		setups: make(chan struct{}, cfg.MaxSetups),
	}
	e.flushCtx, e.stopFlush = context.WithCancel(ctx)
	e.inbox = inbox.New(rdb, cfg.Space, inbox.Config{})
	e.hub = newHub(rdb, cfg.Space, e.log, e.m, cfg.RingSize)
	e.hub.call, e.hub.ctx = e.call, ctx
	e.hub.control, e.hub.onControl = cfg.Space.EdgeControl(), e.onControl
	e.mux = http.NewServeMux()
	e.mux.HandleFunc("/ws", e.serveWS)
	e.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	e.mux.HandleFunc("/readyz", e.serveReady)
	e.m.sessionsFn(e.sessionCount)
	return e, nil
}

// ID is the edge's id in presence and the live-edge registry.
func (e *Edge) ID() string { return e.cfg.EdgeID }

// Collectors returns the edge's metrics for registration.
func (e *Edge) Collectors() []prometheus.Collector { return e.m.collectors() }

// ServeHTTP serves /ws, /healthz and /readyz.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.mux.ServeHTTP(w, r) }

// Start checks Redis, recovers what a previous crash of this data directory
// left behind, and starts the hub, the writer and catch-up pools, the
// heartbeat loop and the ACK flusher.
func (e *Edge) Start(ctx context.Context) error {
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("edge start: redis: %w", err)
	}
	// Loaded now, so that a storm of connects or disconnects does not send
	// every one of them an EVALSHA that fails with NOSCRIPT before the first
	// EVAL.
	for _, sc := range []*redis.Script{delIfOwner, connectScript} {
		if err := sc.Load(ctx, e.rdb).Err(); err != nil {
			e.log.Warn("could not load a script; sessions will load it when Redis says NOSCRIPT", "err", err)
		}
	}
	if err := e.recover(ctx); err != nil {
		return err
	}
	if err := e.hub.ps.Subscribe(ctx, e.hub.control); err != nil {
		return fmt.Errorf("edge start: subscribe to %s: %w", e.hub.control, err)
	}
	e.started.Store(true)
	e.spawn(func() { e.hub.run(e.ctx) })
	for range e.cfg.Writers {
		e.spawn(e.writer)
	}
	for range max(4, e.cfg.Writers/2) {
		e.spawn(e.catchUpWorker)
	}
	e.spawn(e.heartbeatLoop)
	e.spawn(e.ackFlushLoop)
	e.spawn(e.presenceLoop)
	e.spawn(e.pruneLoop)
	e.spawn(e.presenceReaper)
	e.spawn(e.onlineLoop)
	return nil
}

func (e *Edge) spawn(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

func (e *Edge) writer() {
	for {
		s, ok := e.writeQ.pop(e.ctx)
		if !ok {
			return
		}
		s.flush()
	}
}

func (e *Edge) catchUpWorker() {
	for {
		c, ok := e.jobQ.pop(e.ctx)
		if !ok {
			return
		}
		e.catchUp(e.ctx, c)
	}
}

// later hands a held cursor back to the catch-up pool after d (c.s.mu
// held). detach stops the timer of a cursor whose feed or session ends;
// Shutdown stops the timers that have not fired.
func (e *Edge) later(d time.Duration, c *cursor) {
	e.timersMu.Lock()
	defer e.timersMu.Unlock()
	if e.ctx.Err() != nil {
		return
	}
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		e.timersMu.Lock()
		delete(e.timers, t)
		e.timersMu.Unlock()
		e.jobQ.push(c)
	})
	e.timers[t] = struct{}{}
	c.timer = t
}

// stopLater stops a timer of later's that has not fired (nil: none).
func (e *Edge) stopLater(t *time.Timer) {
	if t == nil {
		return
	}
	t.Stop()
	e.timersMu.Lock()
	delete(e.timers, t)
	e.timersMu.Unlock()
}

func (e *Edge) stopTimers() {
	e.timersMu.Lock()
	defer e.timersMu.Unlock()
	for t := range e.timers {
		t.Stop()
	}
	clear(e.timers)
}

// goClose runs a session's close handshake on a goroutine of its own.
func (e *Edge) goClose(s *session, code websocket.StatusCode, reason string) {
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		if err := s.conn.Close(code, reason); err != nil {
			s.conn.CloseNow()
		}
	}()
}

// saveAck records a device's position in the store (durable within the
// store's flush interval) for replay and for other edges.
func (e *Edge) saveAck(s *session, feedName, epoch string, seq uint64) {
	err := e.store.Ack(store.AckPosition{
		Tenant: s.tenant, User: s.user, Device: s.device, Feed: feedName,
		Epoch: epoch, Seq: seq, UpdatedAt: time.Now(),
	})
	if err != nil {
		e.log.Error("store ack position", "session", s.id, "feed", feedName, "err", err)
	}
}

func (e *Edge) serveReady(w http.ResponseWriter, _ *http.Request) {
	if !e.started.Load() || e.draining.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ready\n"))
}

// Sessions returns the number of live sessions (herald_edge_sessions).
func (e *Edge) Sessions() int { return int(e.sessionCount()) }

func (e *Edge) sessionCount() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return float64(len(e.sessions))
}

// call runs one Redis operation through the breaker, if there is one.
func (e *Edge) call(ctx context.Context, name string, fn func(context.Context) error) error {
	if e.cfg.Breaker == nil {
		return fn(ctx)
	}
	return e.cfg.Breaker.Do(ctx, name, fn)
}
