package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/util"
)

// Leases. Entering Sentinel costs about a microsecond plus a little per
// rule, more than the rest of a push. Rules with high limits (compile.go
// puts them on gates of their own) are taken in batches instead: one Entry
// with batch count N takes N tokens from every matching rule of the gate
// for one key (the user, the tenant, or nobody for global rules), and the
// next N-1 checks of that key spend them without entering Sentinel. Tokens
// are only ever spent after Sentinel granted them, so a lease never lets
// more through than the rules allow within an interval, except that tokens
// taken near the end of one interval may be spent at the start of the
// next, and that Sentinel's flow check (global rules) counts what passed
// after it checked, so concurrent checks may each pass at the limit: one
// token each without leases, one batch each with them.
//
// What a lease costs in accuracy is bounded by its size: a lease lives for
// at most leasePeriod (what is left then is abandoned, as if used), a batch
// that Sentinel refuses may still have used the tokens of the gate's
// earlier rules, and after a refusal the key goes one by one (exactly)
// until the period ends. A batch is at most 1/leaseShare of what the
// tightest matching rule allows per leasePeriod, so a rule's count is off
// by at most about 1% of its limit, in either direction, per key and per
// set of rules sharing a step. A rule allowing less than 2*leaseShare per
// leasePeriod (400 a second), and every shadow rule, is checked exactly.

const (
	leasePeriod = time.Second
	leaseShare  = 200  // a batch is at most 1/leaseShare of a period's allowance
	maxBatch    = 1024 // tokens in one lease at most
)

// ruleBatch is how many tokens of r a lease may take at once: 1/leaseShare
// of what r allows per leasePeriod to its tightest value (overrides
// included), at most maxBatch. 1 means r is checked exactly.
func ruleBatch(r *Rule) int64 {
	limit := r.Limit
	for _, n := range r.Overrides {
		limit = min(limit, n)
	}
	n := float64(limit) * float64(min(leasePeriod, r.Interval)) / float64(r.Interval) / leaseShare
	return int64(max(1, min(n, maxBatch)))
}

// leased says whether r is counted in leases.
func leased(r *Rule) bool { return r.Mode == ModeEnforce && ruleBatch(r) > 1 }

// leaseBatch is the batch size of a step: the smallest of its rules'.
func leaseBatch(g *gate, rules []*hotRule) int64 {
	batch := int64(maxBatch)
	for _, f := range g.flows {
		batch = min(batch, ruleBatch(f.st.rule))
	}
	for _, hr := range rules {
		batch = min(batch, ruleBatch(hr.st.rule))
	}
	return batch
}

// leaseKey names whose tokens a lease holds: tenant and user for per-user
// rules, the tenant for per-tenant ones, nobody for global ones.
type leaseKey struct{ tenant, user string }

// leases are a step's leases: one per key for per-user and per-tenant
// gates, a single one for global gates. take is lock-free.
type leases interface {
	// take spends one token of k's lease. ok is false when the lease is
	// empty; exact then says whether to skip the batch and check one by
	// one.
	take(k leaseKey, now int64) (ok, exact bool)
	// grant adds a batch of n that Sentinel granted, less the token the
	// granting check spends.
	grant(k leaseKey, now, n int64)
	// refused makes k go one by one for the rest of the period.
	refused(k leaseKey, now int64)
}

func newLeases(per Per) leases {
	if per == PerGlobal {
		return &lease{}
	}
	t := &leaseTable{}
	t.gen.Store(&leaseGen{})
	return t
}

// lease is one key's tokens.
type lease struct {
	left  atomic.Int64
	until atomic.Int64 // unix ms when what is left is abandoned
	exact atomic.Bool  // a batch was refused: one by one until `until`
	mu    sync.Mutex   // grant and refused
}

func (l *lease) take(_ leaseKey, now int64) (ok, exact bool) {
	if now >= l.until.Load() {
		return false, false
	}
	for {
		n := l.left.Load()
		if n <= 0 {
			return false, l.exact.Load()
		}
		if l.left.CompareAndSwap(n, n-1) {
			return true, false
		}
	}
}

func (l *lease) grant(_ leaseKey, now, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now >= l.until.Load() || l.exact.Load() {
		// Takes leave left alone while the lease is expired or exact.
		l.left.Store(n - 1)
		l.until.Store(now + leasePeriod.Milliseconds())
		l.exact.Store(false)
		return
	}
	// Another check's batch is still in use: add to it (an Add, so no
	// concurrent take is lost).
	l.left.Add(n - 1)
}

func (l *lease) refused(_ leaseKey, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.left.Store(0)
	l.exact.Store(true)
	if now >= l.until.Load() {
		l.until.Store(now + leasePeriod.Milliseconds())
	}
}

// leaseTable holds a step's leases per key, in generations of leasePeriod:
// a lookup moves a lease from the previous generation to the current one,
// and a new generation drops the one before the previous, so the table
// holds only the keys of the last two periods.
type leaseTable struct {
	gen atomic.Pointer[leaseGen]
	mu  sync.Mutex // rotation
}

type leaseGen struct {
	m     sync.Map // leaseKey → *lease
	start int64    // unix ms
	prev  atomic.Pointer[leaseGen]
}

// get returns k's lease; with create, a new one when there is none.
func (t *leaseTable) get(k leaseKey, now int64, create bool) *lease {
	g := t.gen.Load()
	if now-g.start >= leasePeriod.Milliseconds() {
		g = t.rotate(now)
	}
	if v, ok := g.m.Load(k); ok {
		return v.(*lease)
	}
	if p := g.prev.Load(); p != nil {
		if v, ok := p.m.Load(k); ok {
			v, _ = g.m.LoadOrStore(k, v)
			return v.(*lease)
		}
	}
	if !create {
		return nil
	}
	v, _ := g.m.LoadOrStore(k, &lease{})
	return v.(*lease)
}

func (t *leaseTable) rotate(now int64) *leaseGen {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := t.gen.Load()
	if now-g.start < leasePeriod.Milliseconds() {
		return g // rotated meanwhile
	}
	g.prev.Store(nil)
	ng := &leaseGen{start: now}
	ng.prev.Store(g)
	t.gen.Store(ng)
	return ng
}

func (t *leaseTable) take(k leaseKey, now int64) (ok, exact bool) {
	if l := t.get(k, now, false); l != nil {
		return l.take(k, now)
	}
	return false, false
}

func (t *leaseTable) grant(k leaseKey, now, n int64) { t.get(k, now, true).grant(k, now, n) }

func (t *leaseTable) refused(k leaseKey, now int64) { t.get(k, now, true).refused(k, now) }

// nowMs is Sentinel's (coarse) clock: leases and Sentinel's windows agree.
func nowMs() int64 { return int64(util.CurrentTimeMillis()) }
