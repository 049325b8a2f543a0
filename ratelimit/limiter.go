package ratelimit

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
)

// Config configures a Limiter. Zero values are the documented defaults.
type Config struct {
	Logger *slog.Logger // nil discards; Sentinel's own log goes here too
	// Metrics are shared with the Watcher or FileWatcher that feeds the
	// Limiter; nil means NewMetrics() (see Limiter.Metrics).
	Metrics *Metrics
	// UserCapacity is how many users each per-user rule tracks (an LRU;
	// an evicted user starts again with a full allowance). Memory grows
	// with the users seen, about 290 B each. 0 means 100000.
	UserCapacity int
	// TenantCapacity is the same for per-tenant rules; 0 means 10000.
	TenantCapacity int
}

// Verdict is the Limiter's answer for one push.
type Verdict struct {
	Allow bool
	// When !Allow: Drop means do not push (the notification stays in its
	// feed); otherwise hold it and ask again after Retry (an estimate: the
	// interval divided by the limit), for at most MaxWait in all.
	Drop    bool
	Retry   time.Duration
	MaxWait time.Duration
	// Rule names the rule that limited ("" when allowed).
	Rule string
}

var allow = Verdict{Allow: true}

// limiterOpen is set while a Limiter is open: Sentinel's rules are global.
var limiterOpen atomic.Bool

// Limiter enforces a rules document with Sentinel. Push, Pub and Connect
// are cheap, never block and are safe for concurrent use; Apply swaps the
// whole rule set atomically.
type Limiter struct {
	log   *slog.Logger
	m     *Metrics
	caps  capacities
	rules atomic.Pointer[ruleSet]

	mu     sync.Mutex // Apply and Close
	closed bool
}

// New returns a Limiter with no rules (everything passes) until Apply.
// Only one Limiter may be open per process: New returns ErrLimiterOpen
// while another is.
func New(cfg Config) (*Limiter, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.UserCapacity <= 0 {
		cfg.UserCapacity = 100000
	}
	if cfg.TenantCapacity <= 0 {
		cfg.TenantCapacity = 10000
	}
	if !limiterOpen.CompareAndSwap(false, true) {
		return nil, ErrLimiterOpen
	}
	if err := initSentinel(cfg.Logger); err != nil {
		limiterOpen.Store(false)
		return nil, err
	}
	l := &Limiter{log: cfg.Logger, m: cfg.Metrics,
		caps: capacities{users: int64(cfg.UserCapacity), tenants: int64(cfg.TenantCapacity)}}
	l.rules.Store(compile(&Document{Version: FormatVersion}, l.m, l.caps))
	if err := l.load(nil, nil); err != nil {
		limiterOpen.Store(false)
		return nil, err
	}
	flush := func() { l.rules.Load().flushPasses() }
	l.m.flush.Store(&flush)
	acquireClock()
	return l, nil
}

// Metrics returns the Limiter's collectors.
func (l *Limiter) Metrics() *Metrics { return l.m }

// Apply makes doc the rules in force, at once, for every later check. doc
// must come from ParseRules (the Store, Watcher and FileWatcher only pass
// valid documents); Apply checks the few things Sentinel would otherwise
// silently ignore. Counters of rules that stay the same are kept.
func (l *Limiter) Apply(doc *Document) error {
	if doc == nil {
		return fmt.Errorf("apply rules: %w: nil document", ErrInvalid)
	}
	if err := sane(doc); err != nil {
		return fmt.Errorf("apply rules: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	rs := recompile(l.rules.Load(), doc, l.m, l.caps)
	if err := l.load(rs.hot, rs.flows); err != nil {
		return err
	}
	old := l.rules.Swap(rs)
	old.flushPasses() // checks still running on old may add a few more, uncounted
	for name := range old.states {
		if _, ok := rs.states[name]; !ok {
			l.m.forget(name)
		}
	}
	l.m.version.Set(float64(doc.Meta.Version))
	l.log.Info("rate rules applied", "version", doc.Meta.Version, "rules", len(doc.Rules),
		"updated_by", doc.Meta.UpdatedBy, "origin", doc.Meta.Origin)
	return nil
}

func (l *Limiter) load(hot []*hotspot.Rule, flows []*flow.Rule) error {
	if _, err := hotspot.LoadRules(hot); err != nil {
		return fmt.Errorf("load sentinel hotspot rules: %w", err)
	}
	if _, err := flow.LoadRules(flows); err != nil {
		return fmt.Errorf("load sentinel flow rules: %w", err)
	}
	return nil
}

// sane rejects documents ParseRules would never return.
func sane(doc *Document) error {
	names := map[string]bool{}
	for i := range doc.Rules {
		r := &doc.Rules[i]
		bad := func(what string) error {
			return &ValidationError{Line: r.Line, Rule: fmt.Sprintf("%q", r.Name), Problem: what}
		}
		switch {
		case names[r.Name] || !validName(r.Name):
			return bad("name is invalid or repeated")
		case r.Limit <= 0 || r.Interval < time.Second || r.Interval%time.Second != 0:
			return bad("limit or interval out of range")
		case r.Per != PerUser && r.Per != PerTenant && r.Per != PerGlobal:
			return bad("per is invalid")
		case r.Type != "" && validGlob(r.Type) != nil:
			return bad("match.type is invalid")
		}
		for k := range r.Overrides {
			if _, err := parseOverrideKey(k); err != nil {
				return bad(err.Error())
			}
		}
		names[r.Name] = true
	}
	return nil
}

// Current returns the document in force and where it came from. The
// document must not be modified.
func (l *Limiter) Current() (*Document, Meta) {
	doc := l.rules.Load().doc
	return doc, doc.Meta
}

// Push decides whether a notification of type typ for the user may be
// pushed now.
func (l *Limiter) Push(tenant, user, typ string) Verdict {
	p := l.rules.Load().ops[0].plan(typ)
	if p.empty() {
		return allow
	}
	st, limit := p.run(tenant, user)
	if st == nil {
		return allow
	}
	r := st.rule
	if r.Action == ActionDrop {
		st.c.dropped.Inc()
		return Verdict{Drop: true, Rule: r.Name}
	}
	st.c.queued.Inc()
	return Verdict{Retry: st.retry(limit), MaxWait: r.MaxWait, Rule: r.Name}
}

// Pub decides whether a client's pub frame of type typ is accepted.
func (l *Limiter) Pub(tenant, user, typ string) bool {
	return l.refuse(l.rules.Load().ops[1].plan(typ), tenant, user)
}

// Connect decides whether the tenant may open another connection.
func (l *Limiter) Connect(tenant string) bool {
	return l.refuse(l.rules.Load().ops[2].plan(""), tenant, "")
}

// Publish decides whether an event of type typ for the tenant may be
// published through the HTTP API.
func (l *Limiter) Publish(tenant, typ string) bool {
	return l.refuse(l.rules.Load().ops[3].plan(typ), tenant, "")
}

func (l *Limiter) refuse(p *plan, tenant, user string) bool {
	if p.empty() {
		return true
	}
	st, _ := p.run(tenant, user)
	if st == nil {
		return true
	}
	st.c.dropped.Inc()
	return false
}

// Close clears the Limiter's rules from Sentinel (everything passes from
// then on) and lets a new Limiter be created. It is safe to call twice.
func (l *Limiter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.rules.Swap(compile(&Document{Version: FormatVersion}, l.m, l.caps)).flushPasses()
	err := l.load(nil, nil)
	releaseClock()
	limiterOpen.Store(false)
	return err
}
