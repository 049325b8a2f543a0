package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestLeaseBatch(t *testing.T) {
	cases := []struct {
		rule string
		want int64
	}{
		{"{name: r, per: user, limit: 3, interval: 1m, action: drop}", 1},
		{"{name: r, per: user, limit: 399, interval: 1s, action: drop}", 1},
		{"{name: r, per: user, limit: 400, interval: 1s, action: drop}", 2},
		{"{name: r, per: user, limit: 20000, interval: 10s, action: drop}", 10},
		{"{name: r, per: user, limit: 1000000, interval: 1m, action: drop}", 83},
		{"{name: r, per: user, limit: 100000000, interval: 1s, action: drop}", maxBatch},
		{`{name: r, per: user, limit: 1000000, interval: 1s, action: drop, overrides: {"user:acme/slow": 4000}}`, 20},
		{`{name: r, per: tenant, limit: 1000000, interval: 1s, action: drop, overrides: {"tenant:muted": 0}}`, 1},
		{"{name: r, per: global, limit: 20000, interval: 1s, action: drop}", 100},
		{"{name: r, per: global, limit: 20000, interval: 1s, action: drop, mode: shadow}", 1},
	}
	for _, c := range cases {
		rs := compile(mustParse(t, rules("  - "+c.rule+"\n")), NewMetrics(), capacities{users: 10, tenants: 10})
		p := rs.ops[0].plan("x")
		s := append(p.enforce, p.shadow...)[0]
		if s.batch != c.want {
			t.Errorf("%s: batch %d, want %d", c.rule, s.batch, c.want)
		}
		if (s.leases != nil) != (c.want > 1) {
			t.Errorf("%s: leases %v with batch %d", c.rule, s.leases, s.batch)
		}
	}
}

// freshGlob is a type prefix no earlier test used: Sentinel keeps a global
// (flow) rule's counts per resource, across Limiters, for its interval.
func freshGlob() string { return fmt.Sprintf("g%d", time.Now().UnixNano()) }

// A leased limit lets through what the rule allows, give or take one
// percent, never more within the interval, and refuses by that rule.
func TestLeasedLimitsHold(t *testing.T) {
	g := freshGlob()
	l := newLimiter(t, rules(`
  - {name: per-user, match: {type: "a.*"}, per: user, limit: 20000, interval: 10s, action: drop}
  - {name: per-tenant, match: {type: "b.*"}, per: tenant, limit: 20000, interval: 10s, action: drop}
  - {name: everyone, match: {type: "`+g+`.*"}, per: global, limit: 20000, interval: 10s, action: drop}
`))
	for _, c := range []struct {
		rule, typ string
		users     int
	}{{"per-user", "a.x", 1}, {"per-tenant", "b.x", 100}, {"everyone", g + ".x", 100}} {
		if s := l.rules.Load().ops[0].plan(c.typ).enforce[0]; s.batch != 10 {
			t.Fatalf("%s: batch %d, want 10 (leased)", c.rule, s.batch)
		}
		allowed := 0
		var last Verdict
		for i := range 25000 {
			if v := l.Push("acme", fmt.Sprint(i%c.users), c.typ); v.Allow {
				allowed++
			} else {
				last = v
			}
		}
		if allowed > 20000 || allowed < 20000-2*10 || last.Rule != c.rule {
			t.Errorf("%s: %d of 25000 allowed, last refusal by %q; want 19980 to 20000 by %s", c.rule, allowed, last.Rule, c.rule)
		}
	}
}

// Checks from many goroutines do not get more than the limit out of a
// shared (per-tenant or global) lease, except that Sentinel's flow check
// (global rules) counts after it checks: concurrent batches may each pass
// at the limit.
func TestLeasedLimitsHoldConcurrently(t *testing.T) {
	g := freshGlob()
	l := newLimiter(t, rules(`
  - {name: per-tenant, match: {type: "b.*"}, per: tenant, limit: 20000, interval: 10s, action: drop}
  - {name: everyone, match: {type: "`+g+`.*"}, per: global, limit: 20000, interval: 10s, action: drop}
`))
	for _, c := range []struct {
		typ  string
		over int
	}{{"b.y", 0}, {g + ".y", 3 * 10}} {
		typ := c.typ
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				n := 0
				for i := range 7000 {
					if l.Push("acme", fmt.Sprint(g*7000+i), typ).Allow {
						n++
					}
				}
				mu.Lock()
				allowed += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if allowed > 20000+c.over || allowed < 20000-4*2*10 {
			t.Errorf("%s: %d of 28000 allowed from 4 goroutines, want at most %d and not much less than 20000", typ, allowed, 20000+c.over)
		}
	}
}

// Types that match the same rules of a gate share one step, so one lease.
func TestTypesWithTheSameRulesShareLeases(t *testing.T) {
	rs := compile(mustParse(t, rules(`
  - {name: a, match: {type: "marketing.*"}, per: user, limit: 1000000, interval: 1s, action: drop}
  - {name: b, per: user, limit: 1000000, interval: 1s, action: drop}
`)), NewMetrics(), capacities{users: 10, tenants: 10})
	o := rs.ops[0]
	promo, news, order := o.plan("marketing.promo"), o.plan("marketing.news"), o.plan("order.placed")
	if promo.enforce[0] != news.enforce[0] {
		t.Fatal("marketing.promo and marketing.news have different steps")
	}
	if promo.enforce[0] == order.enforce[0] {
		t.Fatal("order.placed (rule b only) shares marketing's step")
	}
}

func TestLeaseTable(t *testing.T) {
	tb := newLeases(PerUser).(*leaseTable)
	k := leaseKey{"acme", "1"}
	now := int64(1_000_000)
	if ok, exact := tb.take(k, now); ok || exact {
		t.Fatal("a lease out of nothing")
	}
	tb.grant(k, now, 3) // one token is the granting check's
	for i := range 2 {
		if ok, _ := tb.take(k, now+int64(i)); !ok {
			t.Fatalf("take %d of a batch of 3 failed", i+1)
		}
	}
	if ok, exact := tb.take(k, now+2); ok || exact {
		t.Fatal("a batch of 3 gave more than 2 takes")
	}
	tb.grant(k, now+10, 3)
	period := leasePeriod.Milliseconds()
	if ok, _ := tb.take(k, now+10+period); ok {
		t.Fatal("a lease outlived its period")
	}
	tb.refused(k, now+10+period)
	if ok, exact := tb.take(k, now+11+period); ok || !exact {
		t.Fatal("a refused key is not exact")
	}
	if ok, exact := tb.take(k, now+11+3*period); ok || exact {
		t.Fatal("exact outlived its period")
	}
	// Keys unused for two periods are gone.
	for i := range 100 {
		tb.grant(leaseKey{"acme", fmt.Sprint(i)}, now+4*period, 5)
	}
	tb.take(k, now+6*period)
	tb.take(k, now+8*period)
	n := 0
	count := func(g *leaseGen) {
		if g != nil {
			g.m.Range(func(key, _ any) bool {
				if key != k {
					n++
				}
				return true
			})
		}
	}
	g := tb.gen.Load()
	count(g)
	count(g.prev.Load())
	if n > 0 {
		t.Fatalf("%d leases left after two idle periods", n)
	}
}

func TestGlobalLease(t *testing.T) {
	g := newLeases(PerGlobal)
	now := int64(1_000_000)
	if ok, _ := g.take(leaseKey{}, now); ok {
		t.Fatal("a lease out of nothing")
	}
	g.grant(leaseKey{}, now, 3)
	g.grant(leaseKey{}, now, 3) // a concurrent batch adds
	n := 0
	for range 10 {
		if ok, _ := g.take(leaseKey{}, now); ok {
			n++
		}
	}
	if n != 4 {
		t.Fatalf("%d takes from two batches of 3, want 4", n)
	}
	g.refused(leaseKey{}, now)
	if ok, exact := g.take(leaseKey{}, now+1); ok || !exact {
		t.Fatal("refused lease not exact")
	}
	if ok, exact := g.take(leaseKey{}, now+time.Second.Milliseconds()+1); ok || exact {
		t.Fatal("exact outlived its period")
	}
}

// Leased plans count passes in bulk; collecting the metrics brings the
// counters up to date.
func TestLeasedPassesAreCounted(t *testing.T) {
	l := newLimiter(t, rules(`
  - {name: a, per: user, limit: 1000000, interval: 1s, action: drop}
  - {name: b, match: {type: "x.*"}, per: tenant, limit: 1000000, interval: 1s, action: drop}
`))
	for i := range 1000 {
		if !l.Push("acme", fmt.Sprint(i%7), "x.y").Allow {
			t.Fatal("refused")
		}
	}
	if p := l.rules.Load().ops[0].plan("x.y"); !p.batchPasses {
		t.Fatal("a leased plan counts passes one by one")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Metrics().Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "herald_ratelimit_passed_total" {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if got["a"] != 1000 || got["b"] != 1000 {
		t.Fatalf("passed %v, want 1000 for a and b", got)
	}
}

// Low limits stay on the exact resource and high ones go to leased
// resources, checked per user, exact, per tenant, then global.
func TestLowAndHighLimitsTogether(t *testing.T) {
	l := newLimiter(t, rules(`
  - {name: tenant-cap, per: tenant, limit: 100000, interval: 1s, action: drop}
  - {name: marketing, match: {type: "marketing.*"}, per: user, limit: 3, interval: 1m, action: drop}
  - {name: user-cap, per: user, limit: 100000, interval: 1s, action: drop}
  - {name: everyone, per: global, limit: 1000000, interval: 1s, action: drop}
  - {name: tenant-small, per: tenant, limit: 50, interval: 1m, action: drop}
`))
	var got []string
	for _, s := range l.rules.Load().ops[0].plan("marketing.promo").enforce {
		got = append(got, fmt.Sprintf("%s/%d", s.g.resource, s.batch))
	}
	want := "[herald.push.user/500 herald.push/1 herald.push.tenant/500 herald.push.global/1024]"
	if fmt.Sprint(got) != want {
		t.Fatalf("steps %v, want %s", got, want)
	}
	for u := range 3 {
		if n, v := pushes(l, 10, "acme", fmt.Sprint(u), "marketing.promo"); n != 3 || v.Rule != "marketing" {
			t.Fatalf("user %d: %d allowed, last by %q; want 3 by marketing", u, n, v.Rule)
		}
	}
	total := 0
	for u := range 60 {
		n, _ := pushes(l, 1, "acme", fmt.Sprint(u+10), "order.placed")
		total += n
	}
	if total != 50-9 {
		t.Fatalf("tenant-small: %d of 60 more allowed, want 41 (9 used by marketing)", total)
	}
}
