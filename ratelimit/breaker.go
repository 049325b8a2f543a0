package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/base"
	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// State is a breaker's state for one name.
type State int

const (
	Closed   State = iota // calls go through
	Open                  // calls fail at once with ErrOpen
	HalfOpen              // a probe call goes through; its outcome closes or reopens
)

func (s State) String() string {
	return [...]string{"closed", "open", "half-open"}[s]
}

// StateChange is one transition of one name's breaker.
type StateChange struct {
	Name     string
	From, To State
}

// BreakerConfig configures a Breaker. Zero values are the documented
// defaults.
type BreakerConfig struct {
	Logger *slog.Logger // nil discards
	// Backend names what the breaker protects, in resource names and the
	// metrics' breaker label; 0 means "redis". Two open Breakers must not
	// share it.
	Backend string
	// ErrorRatio opens the breaker when at least this share of the calls in
	// StatInterval failed; 0 means 0.5. Ignored when ErrorCount > 0.
	ErrorRatio float64
	// ErrorCount, when > 0, opens it after this many failures in
	// StatInterval instead.
	ErrorCount int
	// SlowCall is how long a call may take before it counts as slow; 0
	// means 1s, < 0 turns the slow-call rule off.
	SlowCall time.Duration
	// SlowRatio opens the breaker when at least this share of the calls in
	// StatInterval were slow; 0 means 0.5.
	SlowRatio float64
	// MinRequests is how many calls StatInterval must see before the
	// breaker may open; 0 means 10.
	MinRequests int
	// StatInterval is the window the rules count over; 0 means 10s.
	StatInterval time.Duration
	// RetryTimeout is how long the breaker stays open before it lets one
	// probe call through; 0 means 5s.
	RetryTimeout time.Duration
	// IsFailure decides which errors count; nil counts every error except
	// context.Canceled and redis.Nil (an absent key is an answer).
	IsFailure func(error) bool
	// OnStateChange, if set, is called on every transition, synchronously
	// on the calling goroutine: it must not block.
	OnStateChange func(StateChange)
}

// maxBreakerNames bounds the names one Breaker tracks: each is a Sentinel
// resource, and those are never freed.
const maxBreakerNames = 1024

// Breaker is a circuit breaker per call name around a backend's calls,
// built on Sentinel's circuit breaker rules: an error rule (ratio or
// count, errors recorded with api.TraceError) and a slow-call rule per
// name, on the resource "herald.breaker.<backend>:<name>". Names should be
// a small fixed set (operations like "feed.read", not keys). A Breaker is
// safe for concurrent use.
type Breaker struct {
	cfg     BreakerConfig
	changes chan StateChange
	m       breakerMetrics

	mu     sync.RWMutex
	names  map[string]*nameState // name → state
	byRes  map[string]*nameState // resource → state
	closed bool
}

type nameState struct {
	name, resource string
	rules          map[string]State // rule id → state
	state          State
}

// NewBreaker returns a Breaker; it fails if another open Breaker has the
// same Backend.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	cfg.fill()
	if err := initSentinel(cfg.Logger); err != nil {
		return nil, err
	}
	b := &Breaker{cfg: cfg, changes: make(chan StateChange, 64), m: newBreakerMetrics(cfg.Backend),
		names: map[string]*nameState{}, byRes: map[string]*nameState{}}
	if err := registerBreaker(b); err != nil {
		return nil, err
	}
	acquireClock()
	return b, nil
}

func (c *BreakerConfig) fill() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Backend == "" {
		c.Backend = "redis"
	}
	if c.ErrorRatio <= 0 {
		c.ErrorRatio = 0.5
	}
	if c.SlowCall == 0 {
		c.SlowCall = time.Second
	}
	if c.SlowRatio <= 0 {
		c.SlowRatio = 0.5
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 10
	}
	if c.StatInterval <= 0 {
		c.StatInterval = 10 * time.Second
	}
	if c.RetryTimeout <= 0 {
		c.RetryTimeout = 5 * time.Second
	}
	if c.IsFailure == nil {
		c.IsFailure = func(err error) bool {
			return !errors.Is(err, context.Canceled) && !errors.Is(err, redis.Nil)
		}
	}
}

// Do runs fn under the breaker for name. While name's breaker is open it
// returns an error matching ErrOpen at once, without calling fn; otherwise
// it returns fn's error, after counting it (and how long fn took).
func (b *Breaker) Do(ctx context.Context, name string, fn func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := b.resource(name)
	if err != nil {
		return err
	}
	e, blocked := api.Entry(res, api.WithTrafficType(base.Outbound))
	if blocked != nil {
		b.m.rejected.WithLabelValues(name).Inc()
		return fmt.Errorf("%s %s: %w", b.cfg.Backend, name, ErrOpen)
	}
	err = fn(ctx)
	if err != nil && b.cfg.IsFailure(err) {
		api.TraceError(e, err)
	}
	e.Exit()
	return err
}

// State returns name's state (Closed for a name never used).
func (b *Breaker) State(name string) State {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if ns := b.names[name]; ns != nil {
		return ns.state
	}
	return Closed
}

// IsOpen reports whether name's breaker is open: calls through it fail at
// once. A caller may refuse new work while it is (the edge refuses new
// sessions with 1013).
func (b *Breaker) IsOpen(name string) bool { return b.State(name) == Open }

// Changes delivers every transition; when nobody reads, the oldest ones
// are dropped (the buffer holds 64).
func (b *Breaker) Changes() <-chan StateChange { return b.changes }

// Collectors returns the Breaker's Prometheus collectors.
func (b *Breaker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.m.state, b.m.transitions, b.m.rejected}
}

// Close removes the Breaker's rules from Sentinel; Do then runs every call
// unprotected. It is safe to call twice.
func (b *Breaker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	var errs []error
	for res := range b.byRes {
		if _, err := circuitbreaker.LoadRulesOfResource(res, nil); err != nil {
			errs = append(errs, err)
		}
	}
	b.mu.Unlock()
	unregisterBreaker(b)
	releaseClock()
	return errors.Join(errs...)
}

// resource returns name's Sentinel resource, loading its rules the first
// time.
func (b *Breaker) resource(name string) (string, error) {
	b.mu.RLock()
	ns := b.names[name]
	b.mu.RUnlock()
	if ns != nil {
		return ns.resource, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ns := b.names[name]; ns != nil {
		return ns.resource, nil
	}
	if len(b.names) >= maxBreakerNames {
		return "", fmt.Errorf("breaker %s: more than %d call names (%q): names must be a small fixed set", b.cfg.Backend, maxBreakerNames, name)
	}
	res := "herald.breaker." + b.cfg.Backend + ":" + name
	if !b.closed {
		if _, err := circuitbreaker.LoadRulesOfResource(res, b.rules(res)); err != nil {
			return "", fmt.Errorf("breaker %s: load rules for %q: %w", b.cfg.Backend, name, err)
		}
	}
	ns = &nameState{name: name, resource: res, rules: map[string]State{}}
	b.names[name], b.byRes[res] = ns, ns
	b.m.state.WithLabelValues(name).Set(0)
	return res, nil
}

func (b *Breaker) rules(res string) []*circuitbreaker.Rule {
	c := b.cfg
	common := func(id string) *circuitbreaker.Rule {
		return &circuitbreaker.Rule{Id: id, Resource: res, RetryTimeoutMs: uint32(c.RetryTimeout.Milliseconds()),
			MinRequestAmount: uint64(c.MinRequests), StatIntervalMs: uint32(c.StatInterval.Milliseconds()),
			StatSlidingWindowBucketCount: 10, ProbeNum: 1}
	}
	errRule := common("errors")
	if c.ErrorCount > 0 {
		errRule.Strategy, errRule.Threshold = circuitbreaker.ErrorCount, float64(c.ErrorCount)
	} else {
		errRule.Strategy, errRule.Threshold = circuitbreaker.ErrorRatio, c.ErrorRatio
	}
	rules := []*circuitbreaker.Rule{errRule}
	if c.SlowCall > 0 {
		slow := common("slow")
		slow.Strategy, slow.Threshold = circuitbreaker.SlowRequestRatio, c.SlowRatio
		slow.MaxAllowedRtMs = uint64(max(c.SlowCall.Milliseconds(), 1))
		rules = append(rules, slow)
	}
	return rules
}

// transition records one Sentinel rule's new state; name's state is the
// worst of its rules'.
func (b *Breaker) transition(res, ruleID string, to State) {
	b.mu.Lock()
	ns := b.byRes[res]
	if ns == nil {
		b.mu.Unlock()
		return
	}
	ns.rules[ruleID] = to
	from := ns.state
	ns.state = Closed
	for _, s := range ns.rules {
		if s == Open || s == HalfOpen && ns.state == Closed {
			ns.state = s
		}
	}
	now := ns.state
	b.mu.Unlock()
	if now == from {
		return
	}
	b.m.state.WithLabelValues(ns.name).Set(float64(now))
	b.m.transitions.WithLabelValues(ns.name, now.String()).Inc()
	level := slog.LevelInfo
	if now == Open {
		level = slog.LevelWarn
	}
	b.cfg.Logger.Log(context.Background(), level, "circuit breaker "+now.String(), "backend", b.cfg.Backend, "name", ns.name, "from", from.String())
	ch := StateChange{Name: ns.name, From: from, To: now}
	if b.cfg.OnStateChange != nil {
		b.cfg.OnStateChange(ch)
	}
	for {
		select {
		case b.changes <- ch:
			return
		default:
		}
		select { // full: drop the oldest
		case <-b.changes:
		default:
		}
	}
}
