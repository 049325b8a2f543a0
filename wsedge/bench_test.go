package wsedge_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
)

// Push throughput through a real edge to real WebSocket clients, with and
// without rate rules. benchClients sessions (one user each) get
// notifications appended by feed.Appender as the dispatcher would, and
// every push asks the Gate:
//
//   - broadcast: one tenant-feed entry reaches every client (the edge
//     encodes the frame once; the gate check is most of the per-push work);
//   - personal: one entry per user feed (a Redis message, a frame and a
//     write per push).
//
// One op is one notification to each client; notifications/s counts
// deliveries. Compare BenchmarkPushNoRules and BenchmarkPush10Rules from
// the same run (the ratio is what counts on a shared machine), or run
// BenchmarkPushRulesRatio, which alternates the two on one edge and
// reports the ratio itself. The per-check cost of the rules alone is
// ratelimit's BenchmarkPush10Rules.

const (
	benchClients = 100
	// benchWindow bounds how far the publisher runs ahead of the slowest
	// client, well under the send queue (1024), so no session is cut.
	benchWindow = 256
	benchBatch  = 16 // notifications per Append
)

// benchRules are 10 rules that all match the pushed types (marketing.*),
// per user, per tenant and global, with limits no check reaches: the cost
// of checking, not of limiting.
const benchRules = `version: 1
rules:
  - {name: mkt-user, match: {type: "marketing.*"}, per: user, limit: 1000000, interval: 1s, action: queue, max_wait: 30s}
  - {name: any-user, per: user, limit: 1000000, interval: 1s, action: drop}
  - {name: star-user, match: {type: "*"}, per: user, limit: 10000000, interval: 1m, action: queue, max_wait: 10s, overrides: {"tenant:acme": 20000000}}
  - {name: mkt-user-hour, match: {type: "marketing.?*"}, per: user, limit: 100000000, interval: 1h, action: drop}
  - {name: any-tenant, per: tenant, limit: 100000000, interval: 1s, action: drop}
  - {name: mkt-tenant, match: {type: "marketing.*"}, per: tenant, limit: 100000000, interval: 1m, action: queue, max_wait: 10s}
  - {name: dot-tenant, match: {type: "*.*"}, per: tenant, limit: 1000000000, interval: 1h, action: drop, overrides: {"tenant:acme": 2000000000}}
  - {name: any-global, per: global, limit: 1000000000, interval: 1s, action: drop}
  - {name: mkt-global, match: {type: "marketing.*"}, per: global, limit: 1000000000, interval: 1m, action: drop}
  - {name: dot-global, match: {type: "*.*"}, per: global, limit: 1000000000, interval: 1s, action: drop}
`

// benchRulesExact are the same rules with limits under 400 a second (over
// an hour, so the benchmark never reaches them): ratelimit checks those
// exactly, one Sentinel entry per gate per push, without leases.
const benchRulesExact = `version: 1
rules:
  - {name: mkt-user, match: {type: "marketing.*"}, per: user, limit: 1400000, interval: 1h, action: queue, max_wait: 30s}
  - {name: any-user, per: user, limit: 1400000, interval: 1h, action: drop}
  - {name: star-user, match: {type: "*"}, per: user, limit: 1400000, interval: 1h, action: queue, max_wait: 10s, overrides: {"tenant:acme": 1430000}}
  - {name: mkt-user-hour, match: {type: "marketing.?*"}, per: user, limit: 1400000, interval: 1h, action: drop}
  - {name: any-tenant, per: tenant, limit: 1400000, interval: 1h, action: drop}
  - {name: mkt-tenant, match: {type: "marketing.*"}, per: tenant, limit: 1400000, interval: 1h, action: queue, max_wait: 10s}
  - {name: dot-tenant, match: {type: "*.*"}, per: tenant, limit: 1400000, interval: 1h, action: drop, overrides: {"tenant:acme": 1430000}}
  - {name: any-global, per: global, limit: 1400000, interval: 1h, action: drop}
  - {name: mkt-global, match: {type: "marketing.*"}, per: global, limit: 1400000, interval: 1h, action: drop}
  - {name: dot-global, match: {type: "*.*"}, per: global, limit: 1400000, interval: 1h, action: drop}
`

var benchTypes = []string{"marketing.promo", "marketing.news"}

// switchGate lets one edge run with and without rules.
type switchGate struct{ g atomic.Pointer[gateOf] }

func (s *switchGate) AllowPush(tenant, user, typ string) wsedge.Decision {
	if g := s.g.Load(); g != nil {
		return g.AllowPush(tenant, user, typ)
	}
	return wsedge.Decision{Allow: true}
}
func (s *switchGate) AllowPub(tenant, user, typ string) bool { return true }
func (s *switchGate) AllowConnect(tenant string) bool        { return true }

// pushBench is an edge with benchClients connected clients that count
// what they receive.
type pushBench struct {
	app      *feed.Appender
	personal bool
	sent     int // notifications published to each client
	received []atomic.Int64
	wg       sync.WaitGroup
}

func newPushBench(b *testing.B, gate wsedge.Gate, personal bool) *pushBench {
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	st, err := store.Open(b.TempDir(), store.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ver, err := auth.New(auth.Config{HS256Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	e, err := wsedge.New(rdb, wsedge.Config{Verifier: ver, Store: st, ConnectRatePerIP: -1, Gate: gate})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(e)
	hs.Listener = e.Listener(hs.Listener, nil)
	hs.Config.ConnContext = e.ConnContext
	hs.Start()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Shutdown(ctx)
		hs.Close()
		st.Close()
	})
	pb := &pushBench{app: feed.NewAppender(rdb, feed.AppendConfig{}), personal: personal,
		received: make([]atomic.Int64, benchClients)}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
	ctx, cancel := context.WithCancel(context.Background())
	for i := range benchClients {
		pb.connect(ctx, b, url, i)
	}
	b.Cleanup(func() { cancel(); pb.wg.Wait() })
	return pb
}

func (pb *pushBench) connect(ctx context.Context, b *testing.B, url string, i int) {
	tok, err := auth.Mint(secret, auth.Claims{Subject: fmt.Sprintf("u%d", i), Tenant: "acme", Device: "d"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	conn, _, err := websocket.Dial(dctx, url+"?token="+tok, nil)
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := conn.Read(dctx); err != nil { // welcome
		b.Fatal(err)
	}
	pb.wg.Go(func() {
		defer conn.CloseNow()
		for {
			_, r, err := conn.Reader(ctx)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			pb.received[i].Add(1)
		}
	})
}

func (pb *pushBench) slowest() int {
	n := pb.received[0].Load()
	for i := range pb.received {
		n = min(n, pb.received[i].Load())
	}
	return int(n)
}

// push sends n notifications to every client and waits until each has
// them.
func (pb *pushBench) push(b *testing.B, n int) {
	target := pb.sent + n
	var reqs []feed.Request
	for pb.sent < target {
		for pb.sent-pb.slowest() > benchWindow {
			time.Sleep(50 * time.Microsecond)
		}
		reqs = reqs[:0]
		if pb.personal { // one round: an entry in every user's feed
			pb.sent++
			for i := range benchClients {
				reqs = append(reqs, pb.request(keys.UserFeed("acme", fmt.Sprintf("u%d", i))))
			}
		} else {
			for range min(benchBatch, target-pb.sent) {
				pb.sent++
				reqs = append(reqs, pb.request(keys.TenantFeed("acme")))
			}
		}
		if _, err := pb.app.Append(context.Background(), reqs); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for pb.slowest() < pb.sent {
		if time.Now().After(deadline) {
			b.Fatalf("clients got %d of %d notifications after a minute", pb.slowest(), pb.sent)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func (pb *pushBench) request(f keys.Feed) feed.Request {
	return feed.Request{Feed: f, Type: benchTypes[pb.sent%len(benchTypes)], TS: time.Now().UnixMilli(),
		Data: []byte(`{"title":"bench"}`)}
}

var benchModes = []struct {
	name     string
	personal bool
}{{"broadcast", false}, {"personal", true}}

func benchPushThroughput(b *testing.B, rules string) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			var gate wsedge.Gate
			if rules != "" {
				gate = gateOf{newLimiter(b, rules)}
			}
			pb := newPushBench(b, gate, mode.personal)
			pb.push(b, benchWindow) // warm up: feeds, rings, connections
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			pb.push(b, b.N)
			b.ReportMetric(float64(b.N*benchClients)/time.Since(start).Seconds(), "notifications/s")
		})
	}
}

func BenchmarkPushNoRules(b *testing.B) { benchPushThroughput(b, "") }

func BenchmarkPush10Rules(b *testing.B) { benchPushThroughput(b, benchRules) }

func BenchmarkPush10RulesExact(b *testing.B) { benchPushThroughput(b, benchRulesExact) }

// BenchmarkPushRulesRatio runs rounds with and without the 10 rules
// alternately on one edge and reports the throughput with rules as a
// share of the throughput without (1 means free; the budget is
// at least 0.90), which cancels most of a shared machine's drift. Give it
// a few thousand ops (-benchtime 10000x): each pair of rounds is 200.
func BenchmarkPushRulesRatio(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) { benchRatio(b, benchRules, mode.personal) })
	}
	b.Run("broadcast-exact", func(b *testing.B) { benchRatio(b, benchRulesExact, false) })
}

// benchRatio alternates rounds without and with rules on one edge and
// reports the median of the rounds' ratios, which a burst of load from
// elsewhere moves less than a ratio of totals.
func benchRatio(b *testing.B, rules string, personal bool) {
	l := newLimiter(b, rules)
	sg := &switchGate{}
	pb := newPushBench(b, sg, personal)
	pb.push(b, benchWindow)
	const round = 100
	var with, without time.Duration
	var ratios []float64
	b.ResetTimer()
	for done := 0; done < b.N; done += 2 * round {
		var took [2]time.Duration
		for i, on := range []bool{false, true} {
			if on {
				sg.g.Store(&gateOf{l})
			} else {
				sg.g.Store(nil)
			}
			start := time.Now()
			pb.push(b, round)
			took[i] = time.Since(start)
		}
		without, with = without+took[0], with+took[1]
		ratios = append(ratios, took[0].Seconds()/took[1].Seconds())
	}
	slices.Sort(ratios)
	n := float64(benchClients * round * len(ratios))
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
	b.ReportMetric(n/without.Seconds(), "notifications/s-norules")
	b.ReportMetric(n/with.Seconds(), "notifications/s-rules")
}
