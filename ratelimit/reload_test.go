package ratelimit

import "testing"

// A leased per-tenant rule is checked after the exact resource, whose
// global flow rules counted the check as passed: every notification the
// tenant rule refused used up the global allowance of other tenants.
func TestTenantRefusalLeavesGlobalAllowance(t *testing.T) {
	l := newLimiter(t, rules(`
  - {name: tenant-cap, per: tenant, limit: 400, interval: 1s, action: drop}
  - {name: everyone, per: global, limit: 410, interval: 10s, action: drop}
`))
	if n, v := pushes(l, 420, "acme", "1", "x"); n != 400 || v.Rule != "tenant-cap" {
		t.Fatalf("acme: %d allowed, last by %q; want 400, then tenant-cap", n, v.Rule)
	}
	if n, v := pushes(l, 20, "globex", "1", "x"); n != 10 || v.Rule != "everyone" {
		t.Fatalf("globex: %d allowed, last by %q; want the 10 left of everyone's 410", n, v.Rule)
	}
}

// Sentinel keeps a hotspot rule's counters only for an equal rule with the
// same ParamIndex, and otherwise hands the first old rule's counters with
// the same interval and capacity to a new one. Slots were numbered afresh
// by every Apply, so removing or adding a rule before an unchanged one
// took its counters away or gave it another rule's.
func TestUnchangedRuleKeepsItsCountersWhenOthersComeAndGo(t *testing.T) {
	t.Run("a rule before it removed", func(t *testing.T) {
		l := newLimiter(t, rules(`
  - {name: strict, per: user, limit: 1, interval: 1m, action: drop}
  - {name: loose, per: user, limit: 100, interval: 1m, action: drop}
`))
		if n, v := pushes(l, 5, "acme", "1", "x"); n != 1 || v.Rule != "strict" {
			t.Fatalf("%d allowed, last by %q; want 1, then strict", n, v.Rule)
		}
		if err := l.Apply(mustParse(t, rules(`
  - {name: loose, per: user, limit: 100, interval: 1m, action: drop}
`))); err != nil {
			t.Fatal(err)
		}
		if n, v := pushes(l, 10, "acme", "1", "x"); n != 10 {
			t.Fatalf("loose, 1 of 100 used: %d of 10 allowed, last %+v", n, v)
		}
	})
	t.Run("a rule added before it", func(t *testing.T) {
		loose := "  - {name: loose, per: user, limit: 3, interval: 1m, action: drop}\n"
		l := newLimiter(t, rules(loose))
		if n, _ := pushes(l, 3, "acme", "1", "x"); n != 3 {
			t.Fatalf("%d of 3 allowed", n)
		}
		if err := l.Apply(mustParse(t, rules("  - {name: fresh, per: user, limit: 50, interval: 1m, action: drop}\n", loose))); err != nil {
			t.Fatal(err)
		}
		if n, v := pushes(l, 1, "acme", "1", "x"); n != 0 || v.Rule != "loose" {
			t.Fatalf("user 1 used up loose: %d allowed, last by %q; want a refusal by loose", n, v.Rule)
		}
		if n, _ := pushes(l, 3, "acme", "2", "x"); n != 3 {
			t.Fatalf("user 2: %d of 3 allowed", n)
		}
	})
}
