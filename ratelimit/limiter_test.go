package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
)

// pushes asks n times and returns how many were allowed and the last
// refusal.
func pushes(l *Limiter, n int, tenant, user, typ string) (allowed int, last Verdict) {
	for range n {
		if v := l.Push(tenant, user, typ); v.Allow {
			allowed++
		} else {
			last = v
		}
	}
	return allowed, last
}

func TestPerUserLimitLeavesOtherUsersAlone(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: per-user
    per: user
    limit: 3
    interval: 1m
    action: drop
`))
	if n, v := pushes(l, 10, "acme", "1", "order.placed"); n != 3 || !v.Drop || v.Rule != "per-user" {
		t.Fatalf("user 1: %d allowed, last %+v; want 3 and a drop by per-user", n, v)
	}
	if n, _ := pushes(l, 3, "acme", "2", "order.placed"); n != 3 {
		t.Fatalf("user 2 of the same tenant: %d of 3 allowed", n)
	}
	if n, _ := pushes(l, 3, "other", "1", "order.placed"); n != 3 {
		t.Fatalf("user 1 of another tenant: %d of 3 allowed", n)
	}
	m := l.Metrics()
	if p, lim, d := value(m.passed.WithLabelValues("per-user")), value(m.limited.WithLabelValues("per-user")),
		value(m.dropped.WithLabelValues("per-user")); p != 9 || lim != 7 || d != 7 {
		t.Fatalf("passed %v limited %v dropped %v; want 9, 7, 7", p, lim, d)
	}
}

func TestPerTenantLimit(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: per-tenant
    per: tenant
    limit: 5
    interval: 1m
    action: drop
`))
	total := 0
	for u := range 10 {
		n, _ := pushes(l, 1, "acme", fmt.Sprint(u), "order.placed")
		total += n
	}
	if total != 5 {
		t.Fatalf("tenant acme: %d of 10 users' pushes allowed, want 5", total)
	}
	if n, _ := pushes(l, 5, "globex", "1", "order.placed"); n != 5 {
		t.Fatalf("another tenant: %d of 5 allowed", n)
	}
}

func TestGlobLimitsOnlyMatchingTypes(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: marketing
    match: {type: "marketing.*"}
    per: user
    limit: 2
    interval: 1m
    action: drop
`))
	if n, _ := pushes(l, 5, "acme", "1", "marketing.promo"); n != 2 {
		t.Fatalf("marketing.promo: %d of 5 allowed, want 2", n)
	}
	if n, _ := pushes(l, 5, "acme", "1", "marketing.newsletter"); n != 0 {
		t.Fatalf("marketing.newsletter shares the rule: %d allowed, want 0", n)
	}
	if n, _ := pushes(l, 20, "acme", "1", "order.placed"); n != 20 {
		t.Fatalf("order.placed: %d of 20 allowed, want all", n)
	}
	if n, _ := pushes(l, 3, "acme", "1", "marketing"); n != 3 {
		t.Fatalf(`"marketing" does not match "marketing.*": %d of 3 allowed`, n)
	}
}

func TestQueueVerdictCarriesRetryAndMaxWait(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: 3
    interval: 1m
    action: queue
    max_wait: 30s
`))
	n, v := pushes(l, 4, "acme", "1", "marketing.promo")
	want := Verdict{Retry: 20 * time.Second, MaxWait: 30 * time.Second, Rule: "marketing-per-user"}
	if n != 3 || v != want {
		t.Fatalf("%d allowed, verdict %+v; want 3 and %+v", n, v, want)
	}
	if q := value(l.Metrics().queued.WithLabelValues("marketing-per-user")); q != 1 {
		t.Fatalf("queued counter %v, want 1", q)
	}
}

func TestOverrides(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: per-user
    per: user
    limit: 2
    interval: 1m
    action: queue
    max_wait: 10s
    overrides: {"tenant:acme": 5, "user:acme/vip": 8, "user:globex/vip": 1, "tenant:muted": 0}
  - name: per-tenant
    per: tenant
    limit: 100
    interval: 1m
    action: drop
    overrides: {"tenant:small": 3}
`))
	cases := []struct {
		tenant, user string
		want         int
		retry        time.Duration
	}{
		{"other", "1", 2, 30 * time.Second},         // the rule's limit
		{"acme", "1", 5, 12 * time.Second},          // tenant override: each acme user gets 5
		{"acme", "2", 5, 12 * time.Second},          // ... each of them
		{"acme", "vip", 8, 7500 * time.Millisecond}, // user override inside an overridden tenant
		{"globex", "vip", 1, time.Minute},           // user override
		{"muted", "1", 0, time.Minute},              // 0 lets nothing through
	}
	for _, c := range cases {
		n, v := pushes(l, 10, c.tenant, c.user, "order.placed")
		if n != c.want || v.Retry != c.retry || v.Rule != "per-user" {
			t.Errorf("%s/%s: %d allowed (retry %v, rule %q); want %d (retry %v)", c.tenant, c.user, n, v.Retry, v.Rule, c.want, c.retry)
		}
	}
	total := 0
	for u := range 5 {
		n, v := pushes(l, 1, "small", fmt.Sprint(u), "order.placed")
		total += n
		if n == 0 && (!v.Drop || v.Rule != "per-tenant") {
			t.Errorf("small/%d: %+v, want a drop by per-tenant", u, v)
		}
	}
	if total != 3 {
		t.Errorf("tenant small (override 3): %d of 5 allowed", total)
	}
}

func TestShadowCountsAndNeverBlocks(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: try-user
    per: user
    limit: 2
    interval: 1m
    action: drop
    mode: shadow
  - name: try-global
    per: global
    limit: 5
    interval: 1m
    action: drop
    mode: shadow
`))
	if n, _ := pushes(l, 10, "acme", "1", "order.placed"); n != 10 {
		t.Fatalf("shadow rules blocked: %d of 10 allowed", n)
	}
	m := l.Metrics()
	for rule, want := range map[string][2]float64{"try-user": {2, 8}, "try-global": {5, 5}} {
		passed, would := value(m.passed.WithLabelValues(rule)), value(m.shadow.WithLabelValues(rule))
		if passed != want[0] || would != want[1] {
			t.Errorf("%s: passed %v, would limit %v; want %v", rule, passed, would, want)
		}
		if lim := value(m.limited.WithLabelValues(rule)); lim != 0 {
			t.Errorf("%s: limited %v", rule, lim)
		}
	}
}

func TestGlobalLimit(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: all-marketing
    match: {type: "marketing.*"}
    per: global
    limit: 4
    interval: 1m
    action: queue
    max_wait: 5s
`))
	total := 0
	var last Verdict
	for u := range 10 {
		n, v := pushes(l, 1, fmt.Sprint("t", u%3), fmt.Sprint(u), "marketing.promo")
		total += n
		if n == 0 {
			last = v
		}
	}
	if total != 4 || last.Rule != "all-marketing" || last.Retry != 15*time.Second || last.MaxWait != 5*time.Second {
		t.Fatalf("%d of 10 allowed, last %+v", total, last)
	}
	if n, _ := pushes(l, 10, "t0", "0", "order.placed"); n != 10 {
		t.Fatalf("order.placed: %d of 10", n)
	}
}

// The most specific rule goes first, so one user's refused pushes do not
// use up the tenant's budget (libraries.md, measured).
func TestUserRuleBeforeTenantRule(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: per-tenant
    per: tenant
    limit: 10
    interval: 1m
    action: drop
  - name: per-user
    per: user
    limit: 5
    interval: 1m
    action: drop
`))
	if n, v := pushes(l, 100, "acme", "hammer", "x"); n != 5 || v.Rule != "per-user" {
		t.Fatalf("hammering user: %d allowed, last by %q", n, v.Rule)
	}
	if n, _ := pushes(l, 5, "acme", "steady", "x"); n != 5 {
		t.Fatalf("steady user got %d of 5: the hammering user used up the tenant", n)
	}
}

func TestPubAndConnect(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: chat
    match: {type: "chat.*"}
    per: user
    limit: 2
    interval: 1m
    applies_to: [pub]
  - name: conns
    per: tenant
    limit: 3
    interval: 1m
    applies_to: [connect]
  - name: everything
    per: global
    limit: 1
    interval: 1m
    action: drop
    applies_to: [push, pub]
`))
	pubs := 0
	for range 5 {
		if l.Pub("acme", "1", "chat.message") {
			pubs++
		}
	}
	// "everything" allows one pub in all, so only the first chat pub passes.
	if pubs != 1 {
		t.Fatalf("pubs: %d of 5", pubs)
	}
	conns := 0
	for range 5 {
		if l.Connect("acme") {
			conns++
		}
	}
	if conns != 3 || !l.Connect("globex") {
		t.Fatalf("connects: %d of 5 for acme, want 3; another tenant must connect", conns)
	}
	if n, _ := pushes(l, 3, "acme", "1", "chat.message"); n != 1 {
		t.Fatalf("push: %d of 3; the global push rule counts apart from pub", n)
	}
}

func TestApplySwapsRulesAndKeepsCounters(t *testing.T) {
	one := rules(`
  - name: per-user
    per: user
    limit: 3
    interval: 1m
    action: drop
`)
	l := newLimiter(t, one)
	if n, _ := pushes(l, 2, "acme", "1", "x"); n != 2 {
		t.Fatal(n)
	}
	// The same rule plus a new one: per-user keeps its count (2 used).
	two := one + `
  - name: per-tenant
    per: tenant
    limit: 100
    interval: 1m
    action: drop
`
	doc := mustParse(t, two)
	doc.Meta = Meta{Version: 7, UpdatedBy: "alice", Origin: "redis"}
	if err := l.Apply(doc); err != nil {
		t.Fatal(err)
	}
	if n, _ := pushes(l, 5, "acme", "1", "x"); n != 1 {
		t.Fatalf("after adding a rule: %d allowed, want 1 (counters kept)", n)
	}
	if cur, meta := l.Current(); cur != doc || meta.Version != 7 || meta.UpdatedBy != "alice" {
		t.Fatalf("Current: %+v", meta)
	}
	if v := value(l.Metrics().version); v != 7 {
		t.Fatalf("rules_version %v", v)
	}
	// An empty document turns every limit off.
	if err := l.Apply(mustParse(t, "version: 1\nrules: []\n")); err != nil {
		t.Fatal(err)
	}
	if n, _ := pushes(l, 10, "acme", "1", "x"); n != 10 {
		t.Fatalf("no rules: %d of 10", n)
	}
	if got := series(l.Metrics().passed); got != 0 {
		t.Fatalf("series of removed rules are kept: %d", got)
	}
}

func TestApplyRefusesImpossibleDocuments(t *testing.T) {
	l := newLimiter(t, "")
	bad := &Document{Version: 1, Rules: []Rule{{Name: "x", Per: PerUser, Limit: 1, Interval: 500 * time.Millisecond, AppliesTo: []Op{OpPush}}}}
	if err := l.Apply(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	if err := l.Apply(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
}

func TestOneLimiterPerProcess(t *testing.T) {
	l := newLimiter(t, "")
	if _, err := New(Config{}); !errors.Is(err, ErrLimiterOpen) {
		t.Fatalf("second New: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Apply(mustParse(t, "version: 1\nrules: []\n")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	l2, err := New(Config{})
	if err != nil {
		t.Fatalf("New after Close: %v", err)
	}
	_ = l2.Close()
}

func TestRefillAfterInterval(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: per-user
    per: user
    limit: 2
    interval: 1s
    action: drop
`))
	if n, _ := pushes(l, 5, "acme", "1", "x"); n != 2 {
		t.Fatal(n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !l.Push("acme", "1", "x").Allow {
		if time.Now().After(deadline) {
			t.Fatal("never allowed again after the 1s interval")
		}
		time.Sleep(20 * time.Millisecond) // polling, not synchronisation
	}
}

// Sentinel must start no goroutine and write no file: not in the working
// directory, not under $HOME/logs/csp (where InitDefault writes). The one
// goroutine is the coarse clock's, and it stops with the last Close.
func TestSentinelLeavesNoFilesOrGoroutines(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(cwd)
	goroutines := runtime.NumGoroutine()

	l := newLimiter(t, rules(`
  - name: per-user
    per: user
    limit: 1
    interval: 1m
    action: drop
  - name: g
    per: global
    limit: 1
    interval: 1m
    action: drop
    mode: shadow
`))
	pushes(l, 50, "acme", "1", "x")
	b, err := NewBreaker(BreakerConfig{Logger: testLogger(t), Backend: "files-test"})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Do(t.Context(), "op", func(context.Context) error { return errors.New("x") })
	_ = b.Close()

	if n := runtime.NumGoroutine(); n > goroutines+1 {
		t.Errorf("%d goroutines after using Sentinel, %d before (+1 for the clock)", n, goroutines)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > goroutines; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation
	}
	after, _ := os.ReadDir(cwd)
	if names(after) != names(before) {
		t.Errorf("working directory changed:\nbefore %s\nafter  %s", names(before), names(after))
	}
	if _, err := os.Stat(filepath.Join(home, "logs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("$HOME/logs exists (or %v)", err)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("files in $HOME: %s", names(entries))
	}
}

func names(entries []os.DirEntry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Name())
	}
	slices.Sort(s)
	return fmt.Sprint(s)
}

// A global rule for every type sits on the enforcing resource, checked
// before the per-user rules, yet pushes a per-user rule refuses do not
// count against it.
func TestGlobalRuleCountsOnlyWhatPasses(t *testing.T) {
	l := newLimiter(t, rules(`
  - name: everyone
    per: global
    limit: 5
    interval: 1m
    action: drop
  - name: per-user
    per: user
    limit: 2
    interval: 1m
    action: queue
    max_wait: 1s
`))
	if n, v := pushes(l, 10, "acme", "1", "x"); n != 2 || v.Rule != "per-user" {
		t.Fatalf("user 1: %d allowed, last by %q", n, v.Rule)
	}
	if n, v := pushes(l, 10, "acme", "2", "x"); n != 2 || v.Rule != "per-user" {
		t.Fatalf("user 2: %d allowed, last by %q", n, v.Rule)
	}
	if n, v := pushes(l, 10, "acme", "3", "x"); n != 1 || !v.Drop || v.Rule != "everyone" {
		t.Fatalf("user 3: %d allowed (want the 5th only), last %+v", n, v)
	}
}
