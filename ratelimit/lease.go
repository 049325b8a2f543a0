package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/util"
)

// Leases. Entering Sentinel costs about a microsecond plus a little per
// rule, more than the rest of a push. For rules with high limits a step
// takes tokens in batches instead: one Entry with batch count N takes N
// tokens from every matching rule of the gate for one key (the user, the
// tenant, or nobody for global rules), and the next N-1 checks of that key
// spend them without entering Sentinel. Tokens are only ever spent after
// Sentinel granted them, so a lease never lets more through than the
// rules allow within an interval, except that tokens taken near the end of
// one interval may be spent at the start of the next, and that Sentinel's
// flow check (global rules) counts what passed after it checked, so
// concurrent checks may each pass at the limit: one token each without
// leases, one batch each with them.
//
// What a lease costs in accuracy is bounded by its size: a lease lives for
// at most leasePeriod (what is left then is abandoned, as if used), a batch
// that Sentinel refuses may still have used the tokens of the gate's
// earlier rules, and after a refusal the key goes one by one (exactly)
// until the period ends. A batch is at most 1/leaseShare of what the
// tightest matching rule allows per leasePeriod, so a rule's count is off
// by at most about 1% of its limit, in either direction, per key and per
// set of rules sharing a step. Rules allowing less than leaseShare per
// leasePeriod (200 per second) are checked exactly, one Entry per
// notification; so are shadow rules.

const (
	leasePeriod = time.Second
	leaseShare  = 200  // a batch is at most 1/leaseShare of a period's allowance
	maxBatch    = 1024 // tokens in one lease at most
)

// leaseBatch is the batch size for a step over g's rules: 1 (no leases)
// unless every rule allows at least 2*leaseShare per leasePeriod.
func leaseBatch(g *gate, rules []*hotRule) int64 {
	batch := int64(maxBatch)
	per := func(limit int64, interval time.Duration) {
		n := limit * int64(min(leasePeriod, interval)) / int64(interval) / leaseShare
		batch = min(batch, max(n, 1))
	}
	for _, f := range g.flows {
		per(int64(f.r.Threshold), f.st.interval)
	}
	for _, hr := range rules {
		for i, o := range g.owner {
			if o != hr {
				continue
			}
			limit := g.slots[i].Threshold
			for _, n := range g.slots[i].SpecificItems {
				limit = min(limit, n)
			}
			per(limit, hr.st.interval)
		}
	}
	return batch
}

// leaseKey names whose tokens a lease holds: tenant and user for per-user
// rules, the tenant for per-tenant ones, nobody for global ones.
type leaseKey struct{ tenant, user string }

type lease struct {
	left  int64 // tokens granted and not spent
	until int64 // unix ms when what is left is abandoned
	exact bool  // a batch was refused: one by one until `until`
}

// leases are a step's leases: one per key for per-user and per-tenant
// gates, a single one (lock-free) for global gates.
type leases interface {
	take(k leaseKey, now int64) (ok, exact bool)
	grant(k leaseKey, now, n int64)
	refused(k leaseKey, now int64)
}

func newLeases(per Per) leases {
	if per == PerGlobal {
		return &globalLease{}
	}
	return &leaseTable{cur: map[leaseKey]*lease{}, prev: map[leaseKey]*lease{}}
}

// leaseTable holds a step's leases per key. Leases live in two
// generations of leasePeriod each, so the table holds only the keys of the
// last two periods.
type leaseTable struct {
	mu      sync.Mutex
	cur     map[leaseKey]*lease
	prev    map[leaseKey]*lease
	rotated int64
}

// nowMs is Sentinel's (coarse) clock: leases and Sentinel's windows agree.
func nowMs() int64 { return int64(util.CurrentTimeMillis()) }

// lookup returns k's lease, nil when there is none (t.mu held).
func (t *leaseTable) lookup(k leaseKey, now int64) *lease {
	if now-t.rotated >= leasePeriod.Milliseconds() {
		t.prev, t.cur = t.cur, t.prev
		clear(t.cur)
		t.rotated = now
	}
	l := t.cur[k]
	if l == nil {
		if l = t.prev[k]; l != nil {
			delete(t.prev, k)
			t.cur[k] = l
		}
	}
	if l != nil && now >= l.until {
		*l = lease{}
	}
	return l
}

// take spends one token of k's lease. ok is false when the lease is empty;
// exact then says whether to skip the batch and check one by one.
func (t *leaseTable) take(k leaseKey, now int64) (ok, exact bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lookup(k, now)
	switch {
	case l == nil:
		return false, false
	case l.left > 0:
		l.left--
		return true, false
	}
	return false, l.exact
}

// grant adds a batch Sentinel granted, less the token the check spends.
func (t *leaseTable) grant(k leaseKey, now, n int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lookup(k, now)
	if l == nil {
		l = &lease{}
		t.cur[k] = l
	}
	if l.until == 0 {
		l.until = now + leasePeriod.Milliseconds()
	}
	l.left += n - 1
	l.exact = false
}

// refused makes k go one by one for the rest of the period.
func (t *leaseTable) refused(k leaseKey, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lookup(k, now)
	if l == nil {
		l = &lease{}
		t.cur[k] = l
	}
	if l.until == 0 {
		l.until = now + leasePeriod.Milliseconds()
	}
	l.left, l.exact = 0, true
}

// globalLease is the one lease of a global gate; take is lock-free.
type globalLease struct {
	left  atomic.Int64
	until atomic.Int64 // unix ms
	exact atomic.Bool
	mu    sync.Mutex // grant and refused
}

func (g *globalLease) take(_ leaseKey, now int64) (ok, exact bool) {
	if now >= g.until.Load() {
		return false, false
	}
	for {
		n := g.left.Load()
		if n <= 0 {
			return false, g.exact.Load()
		}
		if g.left.CompareAndSwap(n, n-1) {
			return true, false
		}
	}
}

func (g *globalLease) grant(_ leaseKey, now, n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if now >= g.until.Load() || g.exact.Load() {
		// Takes leave left alone while the lease is expired or exact.
		g.left.Store(n - 1)
		g.until.Store(now + leasePeriod.Milliseconds())
		g.exact.Store(false)
		return
	}
	// Another check's batch is still in use: add to it (an Add, so no
	// concurrent take is lost).
	g.left.Add(n - 1)
}

func (g *globalLease) refused(_ leaseKey, now int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.left.Store(0)
	g.exact.Store(true)
	if now >= g.until.Load() {
		g.until.Store(now + leasePeriod.Milliseconds())
	}
}
