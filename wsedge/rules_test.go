package wsedge_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
)

// Rate rules on a real edge: a real ratelimit.Limiter behind the edge's
// Gate, real redis-server, real WebSocket clients. Sentinel's state is
// global per process, so none of these tests runs in parallel, and each
// closes its Limiter (and Breaker) in its cleanup.

// gateOf adapts a Limiter to the edge's Gate, as cmd/herald does.
type gateOf struct{ l *ratelimit.Limiter }

func (g gateOf) AllowPush(tenant, user, typ string) wsedge.Decision {
	v := g.l.Push(tenant, user, typ)
	return wsedge.Decision{Allow: v.Allow, Drop: v.Drop, Retry: v.Retry, MaxWait: v.MaxWait}
}

func (g gateOf) AllowPub(tenant, user, typ string) bool { return g.l.Pub(tenant, user, typ) }
func (g gateOf) AllowConnect(tenant string) bool        { return g.l.Connect(tenant) }

// newLimiter opens the process's Limiter with yaml applied ("" for none)
// and closes it (clearing Sentinel's rules) at the test's cleanup.
func newLimiter(t testing.TB, yaml string) *ratelimit.Limiter {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := ratelimit.New(ratelimit.Config{Logger: log})
	if err != nil {
		t.Fatalf("ratelimit.New: %v (a Limiter of an earlier test still open?)", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close limiter: %v", err)
		}
	})
	if yaml != "" {
		doc, err := ratelimit.ParseRules([]byte(yaml))
		if err != nil {
			t.Fatalf("ParseRules: %v", err)
		}
		if err := l.Apply(doc); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func withGate(l *ratelimit.Limiter) func(*wsedge.Config) {
	return func(c *wsedge.Config) { c.Gate = gateOf{l} }
}

// connectAs connects a device of user in tenant.
func (v *env) connectAs(e *edge, tenant, user, device string) *client {
	v.t.Helper()
	tok, err := auth.Mint(secret, auth.Claims{Subject: user, Tenant: tenant, Device: device}, time.Hour)
	if err != nil {
		v.t.Fatal(err)
	}
	c, err := dial(v.t, e.url, tok)
	if err != nil {
		v.t.Fatal(err)
	}
	if f := c.next(); f["t"] != "welcome" {
		v.t.Fatalf("first frame %v, want welcome", f)
	}
	return c
}

// publishTypes appends one notification per type, in order, in one call.
func (v *env) publishTypes(f keys.Feed, types ...string) []feed.Result {
	v.t.Helper()
	i := 0
	return v.publish(f, len(types), func(r *feed.Request) { r.Type = types[i]; i++ })
}

func times(typ string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = typ
	}
	return out
}

// metric reads one series from collectors: name and label pairs; 0 when
// the series does not exist.
func metric(t *testing.T, cs []prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(cs...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(p *dto.LabelPair) bool {
					return p.GetName() == labels[i] && p.GetValue() == labels[i+1]
				}) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func TestRulePerUserLimitLeavesOtherUsersAlone(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-per-user, match: {type: "marketing.*"}, per: user, limit: 3, interval: 1m, action: drop}
`)
	e := v.startEdge("", withGate(l))
	u1, u2 := v.connect(e, "u1", "phone"), v.connect(e, "u2", "phone")
	// u1 gets 10, u2 (same tenant) as many as the limit; an order
	// notification, which the rule does not match, closes each run.
	v.publishTypes(keys.UserFeed("acme", "u1"), append(times("marketing.promo", 10), "order.placed")...)
	v.publishTypes(keys.UserFeed("acme", "u2"), append(times("marketing.promo", 3), "order.placed")...)
	if got := seqs(u1.notifications(4)); !slices.Equal(got, []uint64{1, 2, 3, 11}) {
		t.Fatalf("u1 got %v, want 1 2 3 (its limit) and the order 11", got)
	}
	if got := seqs(u2.notifications(4)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("u2 got %v, want all four: u1's limit is not u2's", got)
	}
	if d := metric(t, l.Metrics().Collectors(), "herald_ratelimit_dropped_total", "rule", "marketing-per-user"); d != 7 {
		t.Fatalf("dropped %v, want 7", d)
	}
}

func TestRulePerTenantLimit(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-per-tenant, match: {type: "marketing.*"}, per: tenant, limit: 4, interval: 1m, action: drop}
`)
	e := v.startEdge("", withGate(l))
	a1, a2 := v.connectAs(e, "acme", "u1", "d"), v.connectAs(e, "acme", "u2", "d")
	g1 := v.connectAs(e, "globex", "u1", "d")

	v.publishTypes(keys.UserFeed("acme", "u1"), times("marketing.promo", 3)...)
	assertConsecutive(t, a1.notifications(3), 1)
	// acme has one left: u2 gets its first only.
	v.publishTypes(keys.UserFeed("acme", "u2"), append(times("marketing.promo", 3), "order.placed")...)
	if got := seqs(a2.notifications(2)); !slices.Equal(got, []uint64{1, 4}) {
		t.Fatalf("acme u2 got %v, want 1 (the tenant's 4th) and the order 4", got)
	}
	// Another tenant has its own 4.
	v.publishTypes(keys.UserFeed("globex", "u1"), append(times("marketing.promo", 5), "order.placed")...)
	if got := seqs(g1.notifications(5)); !slices.Equal(got, []uint64{1, 2, 3, 4, 6}) {
		t.Fatalf("globex u1 got %v, want 1-4 and the order 6", got)
	}
}

func TestRuleTypeGlob(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing, match: {type: "marketing.*"}, per: user, limit: 2, interval: 1m, action: drop}
`)
	e := v.startEdge("", withGate(l))
	c := v.connect(e, "u1", "phone")
	var types []string
	for range 5 {
		types = append(types, "marketing.promo", "order.placed")
	}
	v.publishTypes(keys.UserFeed("acme", "u1"), types...) // marketing odd seqs, order even
	ns := c.notifications(7)
	if got := seqs(ns); !slices.Equal(got, []uint64{1, 2, 3, 4, 6, 8, 10}) {
		t.Fatalf("got %v, want marketing 1 and 3 and every order", got)
	}
	for _, n := range ns[4:] {
		if n.Type != "order.placed" {
			t.Fatalf("after the limit got %s %d", n.Type, n.Seq)
		}
	}
}

// queue holds what is over the limit and pushes it later, in order, with
// nothing skipped while max_wait is long enough; what follows a held
// notification waits behind it, even a type no rule matches.
func TestRuleQueueDeliversEverythingInOrderLater(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-queue, match: {type: "marketing.*"}, per: user, limit: 2, interval: 1s, action: queue, max_wait: 30s}
`)
	e := v.startEdge("", withGate(l))
	c := v.connect(e, "u1", "phone")
	types := append(times("marketing.promo", 3), "order.placed", "marketing.promo", "marketing.promo")
	start := time.Now()
	v.publishTypes(keys.UserFeed("acme", "u1"), types...)
	ns := c.notifications(2)
	first := time.Since(start)
	ns = append(ns, c.notifications(4)...)
	all := time.Since(start)
	assertConsecutive(t, ns, 1)
	for i, n := range ns {
		if n.Type != types[i] {
			t.Fatalf("seq %d has type %s, want %s", n.Seq, n.Type, types[i])
		}
	}
	// 2 per second: the last two marketing notifications need 2 more
	// tokens, about a second after the first two.
	if all < 800*time.Millisecond || all-first < 500*time.Millisecond {
		t.Fatalf("first two after %v, all six after %v: want the rest held back", first, all)
	}
	cs := e.Collectors()
	if h, s := metric(t, cs, "herald_edge_rule_held_total"), metric(t, cs, "herald_edge_rule_skipped_total"); h == 0 || s != 0 {
		t.Fatalf("held %v skipped %v; want some held and none skipped", h, s)
	}
	if q := metric(t, l.Metrics().Collectors(), "herald_ratelimit_queued_total", "rule", "marketing-queue"); q == 0 {
		t.Fatal("queued counter is 0")
	}
}

// A queued notification that waits past max_wait is not pushed; what
// follows it is.
func TestRuleQueuePastMaxWaitSkips(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-queue, match: {type: "marketing.*"}, per: user, limit: 1, interval: 1h, action: queue, max_wait: 300ms}
`)
	e := v.startEdge("", withGate(l))
	c := v.connect(e, "u1", "phone")
	start := time.Now()
	v.publishTypes(keys.UserFeed("acme", "u1"), "marketing.promo", "marketing.promo", "order.placed")
	if got := seqs(c.notifications(2)); !slices.Equal(got, []uint64{1, 3}) {
		t.Fatalf("got %v, want 1 and 3", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("seq 3 after %v: it should wait behind seq 2 for max_wait", d)
	}
	if s := metric(t, e.Collectors(), "herald_edge_rule_skipped_total"); s != 1 {
		t.Fatalf("skipped %v, want 1", s)
	}
}

// drop pushes less, but the feed (the inbox) keeps every notification, and
// the device's ACK position moves past the dropped ones, so a reconnect
// does not offer them again (contracts section 4).
func TestRuleDropKeepsInboxAndMovesAckPosition(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-drop, match: {type: "marketing.*"}, per: user, limit: 2, interval: 1h, action: drop}
`)
	e := v.startEdge("", withGate(l))
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	ackAt := func(want uint64) {
		t.Helper()
		eventually(t, "ACK position "+strconv.FormatUint(want, 10)+" in the store", func() bool {
			ps, _ := e.store.Acks("acme", "u1", "phone")
			return ps["user"].Seq == want
		})
	}
	skipped := func(want float64) {
		t.Helper()
		eventually(t, "skipped count", func() bool {
			return metric(t, e.Collectors(), "herald_edge_rule_skipped_total") == want
		})
	}

	// 1-2 pushed and acked; 3-5 dropped while everything pushed is acked:
	// the position moves past them at once.
	v.publishTypes(f, times("marketing.promo", 2)...)
	ns := c.notifications(2)
	c.ack(ns[1])
	ackAt(2)
	v.publishTypes(f, times("marketing.promo", 3)...)
	skipped(3)
	ackAt(5)

	// 6 pushed, not yet acked; 7-8 dropped: acking 6 moves the position
	// past them.
	v.publishTypes(f, "order.placed", "marketing.promo", "marketing.promo")
	ns = c.notifications(1)
	if ns[0].Seq != 6 {
		t.Fatalf("got seq %d, want the order 6", ns[0].Seq)
	}
	skipped(5)
	c.ack(ns[0])
	ackAt(8)
	eventually(t, "ACK position 8 in Redis", func() bool {
		s, _ := v.rdb.HGet(context.Background(), keys.Space{}.Acks("acme", "u1", "phone"), "user").Result()
		return len(s) > 2 && s[len(s)-2:] == ":8"
	})

	// The inbox holds all eight.
	_, entries, err := feed.NewReader(v.rdb, keys.Space{}).Range(context.Background(), f, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 8 || entries[7].Seq != 8 {
		t.Fatalf("feed holds %d entries, want all 8", len(entries))
	}

	// A reconnect offers nothing dropped: the first notification is the
	// next new one.
	c.conn.CloseNow()
	c = v.connect(e, "u1", "phone")
	v.publishTypes(f, "order.placed")
	if ns := c.notifications(1); ns[0].Seq != 9 {
		t.Fatalf("after reconnect got seq %d, want 9", ns[0].Seq)
	}
}

// A shadow rule counts what it would limit and never blocks.
func TestRuleShadowCountsNeverBlocks(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, `version: 1
rules:
  - {name: marketing-shadow, match: {type: "marketing.*"}, per: user, limit: 1, interval: 1h, action: drop, mode: shadow}
`)
	e := v.startEdge("", withGate(l))
	c := v.connect(e, "u1", "phone")
	v.publishTypes(keys.UserFeed("acme", "u1"), times("marketing.promo", 5)...)
	assertConsecutive(t, c.notifications(5), 1)
	if n := metric(t, l.Metrics().Collectors(), "herald_ratelimit_shadow_would_limit_total", "rule", "marketing-shadow"); n != 4 {
		t.Fatalf("shadow_would_limit %v, want 4", n)
	}
	cs := e.Collectors()
	if h, s := metric(t, cs, "herald_edge_rule_held_total"), metric(t, cs, "herald_edge_rule_skipped_total"); h != 0 || s != 0 {
		t.Fatalf("held %v skipped %v: a shadow rule must not limit", h, s)
	}
}

// An invalid document is refused with the field named, whether it comes
// through the Store or is written around it, and the rules in force stay.
func TestRuleInvalidDocumentKeepsOldRules(t *testing.T) {
	v := newEnv(t)
	l := newLimiter(t, "")
	e := v.startEdge("", withGate(l))
	st := ratelimit.NewStore(v.rdb, keys.Space{})
	ctx := context.Background()
	good := `version: 1
rules:
  - name: marketing
    match: {type: "marketing.*"}
    per: user
    limit: 2
    interval: 1h
    action: drop
`
	if _, err := st.Put(ctx, []byte(good), "test"); err != nil {
		t.Fatal(err)
	}
	w := ratelimit.NewWatcher(st, l.Apply, ratelimit.WatcherConfig{Metrics: l.Metrics()})
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(wctx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	eventually(t, "version 1 applied", func() bool { _, m := l.Current(); return m.Version == 1 })

	bad := `version: 1
rules:
  - name: marketing
    match: {type: "marketing.*"}
    per: user
    limit: 200
    interval: 0s
    action: drop
`
	_, err := st.Put(ctx, []byte(bad), "test")
	ps := ratelimit.Problems(err)
	if !errors.Is(err, ratelimit.ErrInvalid) || len(ps) != 1 || ps[0].Field != "interval" || ps[0].Line != 7 {
		t.Fatalf("Put of an invalid document: %v (problems %v), want one problem in field interval at line 7", err, ps)
	}
	if got, err := st.Get(ctx); err != nil || got.Meta.Version != 1 {
		t.Fatalf("stored version %d, %v; want 1 kept", got.Meta.Version, err)
	}
	// Written around the Store (and announced): the edge's watcher refuses it.
	sp := keys.Space{}
	if err := v.rdb.HSet(ctx, sp.Rules(), "yaml", bad, "version", 2).Err(); err != nil {
		t.Fatal(err)
	}
	v.rdb.Publish(ctx, sp.RulesChannel(), "2")
	eventually(t, "reload error counted", func() bool {
		return metric(t, l.Metrics().Collectors(), "herald_ratelimit_rules_reload_errors_total") == 1
	})
	if _, m := l.Current(); m.Version != 1 {
		t.Fatalf("version in force %d, want 1", m.Version)
	}
	// The old limit still holds on the edge.
	c := v.connect(e, "u1", "phone")
	v.publishTypes(keys.UserFeed("acme", "u1"), append(times("marketing.promo", 4), "order.placed")...)
	if got := seqs(c.notifications(3)); !slices.Equal(got, []uint64{1, 2, 5}) {
		t.Fatalf("got %v, want 1 2 (the old limit of 2) and the order 5", got)
	}
}

// While Redis is frozen (SIGSTOP) the breaker opens and sessions stay up;
// after SIGCONT delivery resumes and every notification, published before,
// during and after, arrives once, in order.
func TestBreakerOpensWhileRedisPausedNothingLost(t *testing.T) {
	v := newEnv(t)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := ratelimit.NewBreaker(ratelimit.BreakerConfig{Logger: log, ErrorCount: 2, MinRequests: 2,
		StatInterval: 2 * time.Second, RetryTimeout: 300 * time.Millisecond, SlowCall: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	// The edge's client gives up on a frozen Redis quickly; the
	// publisher's waits for as long as it takes.
	edgeRDB := redis.NewClient(&redis.Options{Addr: v.redis.Addr(), ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { edgeRDB.Close() })
	pubRDB := redis.NewClient(&redis.Options{Addr: v.redis.Addr(), ReadTimeout: -1, WriteTimeout: -1, MaxRetries: -1})
	t.Cleanup(func() { pubRDB.Close() })
	pub := feed.NewAppender(pubRDB, feed.AppendConfig{})

	rdb := v.rdb // startEdge gives the edge v.rdb
	v.rdb = edgeRDB
	e := v.startEdge("", func(c *wsedge.Config) {
		c.Breaker = b
		c.PresenceTTL = 600 * time.Millisecond // an edge heartbeat through the breaker every 200ms
	})
	v.rdb = rdb
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	v.publish(f, 5, nil)
	assertConsecutive(t, c.notifications(5), 1)
	if err := pubRDB.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	if err := v.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := v.redis.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	eventually(t, "breaker open for edge.heartbeat", func() bool { return b.State("edge.heartbeat") == ratelimit.Open })
	if s := metric(t, b.Collectors(), "herald_breaker_state", "name", "edge.heartbeat"); s != 1 {
		t.Fatalf("herald_breaker_state %v, want 1 (open)", s)
	}
	// The session is still up: the edge answers a ping frame without Redis.
	c.send(`{"t":"ping"}`)
	if m := c.next(); m["t"] != "pong" {
		t.Fatalf("got %v, want pong", m)
	}
	// Published while Redis is frozen: the append waits in Redis's socket.
	during := make(chan error, 1)
	go func() {
		reqs := make([]feed.Request, 10)
		for i := range reqs {
			reqs[i] = feed.Request{Feed: f, SourceStream: "test-during", SourceID: strconv.Itoa(i+1) + "-0",
				Type: "order.placed", TS: time.Now().UnixMilli(), Data: []byte(`{"during":true}`)}
		}
		_, err := pub.Append(context.Background(), reqs)
		during <- err
	}()
	c.send(`{"t":"ping"}`)
	if m := c.next(); m["t"] != "pong" {
		t.Fatalf("got %v, want pong", m)
	}
	resume()
	if err := <-during; err != nil {
		t.Fatalf("append during the pause: %v", err)
	}
	assertConsecutive(t, c.notifications(10), 6)
	v.publish(f, 10, nil)
	assertConsecutive(t, c.notifications(10), 16)
	eventually(t, "breaker closed again", func() bool { return b.State("edge.heartbeat") == ratelimit.Closed })
	v.publish(f, 1, nil)
	if n := c.notifications(1); n[0].Seq != 26 {
		t.Fatalf("after the breaker closed got seq %d, want 26", n[0].Seq)
	}
}
