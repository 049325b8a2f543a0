package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// testLogger logs to the test's output at debug level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig is a config for fast tests: short lease, small retries, feeds
// long enough to keep every entry.
func testConfig(t testing.TB, space keys.Space, consumer string) dispatcher.Config {
	return dispatcher.Config{
		Space:    space,
		Consumer: consumer,
		Block:    100 * time.Millisecond,
		LeaseTTL: 600 * time.Millisecond,
		RetryMin: time.Millisecond,
		RetryMax: 20 * time.Millisecond,
		Append:   feedRetention,
		Logger:   testLogger(t),
	}
}

var feedRetention = feedConfig(100000)

// running is a Dispatcher whose Run is in a goroutine.
type running struct {
	*dispatcher.Dispatcher
	cancel context.CancelFunc
	done   chan error
}

// startDispatcher runs a dispatcher until stop or the end of the test.
func startDispatcher(t testing.TB, rdb redis.UniversalClient, cfg dispatcher.Config) *running {
	t.Helper()
	d, err := dispatcher.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Dispatcher: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; it is safe to call twice.
func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	if err, ok := <-r.done; ok {
		close(r.done)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay) // polling a condition with a deadline
	}
}

// publish XADDs the envelopes to their ingest streams in pipelines, as a
// producer in any language would.
func publish(t testing.TB, rdb redis.UniversalClient, space keys.Space, partitions int, envs []events.Envelope) {
	t.Helper()
	ctx := context.Background()
	for len(envs) > 0 {
		n := min(len(envs), 1000)
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, e := range envs[:n] {
				p.XAdd(ctx, &redis.XAddArgs{Stream: space.IngestStream(e.Tenant, partitions), Values: e.Values()})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		envs = envs[n:]
	}
}

// publishRaw XADDs one entry with exactly the given fields.
func publishRaw(t testing.TB, rdb redis.UniversalClient, stream string, fields ...string) string {
	t.Helper()
	vals := make([]any, len(fields))
	for i, f := range fields {
		vals[i] = f
	}
	id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: stream, Values: vals}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// numbered is an event for user u of tenant with data {"n":i}.
func numbered(tenant string, to events.Audience, i int) events.Envelope {
	return events.Envelope{
		Type: "test.numbered", Tenant: tenant, To: to,
		Data: json.RawMessage(`{"n":` + strconv.Itoa(i) + `}`), TS: 1700000000000 + int64(i),
	}
}

// feedEntry is what a test compares of a feed entry.
type feedEntry struct {
	ID     string
	Type   string
	Data   string
	TS     string
	Exp    string
	Device string
}

// readFeed returns every entry of a feed's stream.
func readFeed(t testing.TB, rdb redis.UniversalClient, space keys.Space, f keys.Feed) []feedEntry {
	t.Helper()
	return readFeedKey(t, rdb, space.FeedStream(f))
}

func readFeedKey(t testing.TB, rdb redis.UniversalClient, key string) []feedEntry {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]feedEntry, len(msgs))
	for i, m := range msgs {
		s := func(k string) string { v, _ := m.Values[k].(string); return v }
		out[i] = feedEntry{ID: m.ID, Type: s("type"), Data: s("data"), TS: s("ts"), Exp: s("exp"), Device: s("device")}
	}
	return out
}

// feedSeq returns a feed's last seq, 0 if it does not exist.
func feedSeq(t testing.TB, rdb redis.UniversalClient, space keys.Space, f keys.Feed) int {
	t.Helper()
	s, err := rdb.HGet(context.Background(), space.FeedMeta(f), "seq").Result()
	if err == redis.Nil {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(s)
	return n
}

// drained reports whether the group has read and acknowledged everything
// on every stream.
func drained(t testing.TB, rdb redis.UniversalClient, streams []string) bool {
	t.Helper()
	for _, s := range streams {
		groups, err := rdb.XInfoGroups(context.Background(), s).Result()
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Name == dispatcher.DefaultGroup && (g.Lag != 0 || g.Pending != 0) {
				return false
			}
		}
		if len(groups) == 0 {
			return false
		}
	}
	return true
}

// checkSequence asserts that a feed holds seq 1..len(want) with the wanted
// data, in order.
func checkSequence(t testing.TB, got []feedEntry, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("feed has %d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.ID != fmt.Sprintf("%d-0", i+1) {
			t.Fatalf("entry %d has id %s, want %d-0", i, e.ID, i+1)
		}
		if e.Data != want[i] {
			t.Fatalf("entry %d (seq %d) has data %s, want %s", i, i+1, e.Data, want[i])
		}
	}
}

func newServer(t testing.TB) (*redistest.Server, *redis.Client) {
	srv := redistest.Start(t)
	return srv, srv.Client(t)
}

// metricValue returns the value of a dispatcher metric (a histogram's count
// of samples), the one with the given label value when it has a label.
func metricValue(t testing.TB, d *dispatcher.Dispatcher, name, label string) float64 {
	t.Helper()
	v, ok := metricValueOK(t, d, name, label)
	if !ok {
		t.Fatalf("no metric %s{%s}", name, label)
	}
	return v
}

// metricValueOK is metricValue, with ok false while the metric has no
// value for label yet (a counter vector before its first increment).
func metricValueOK(t testing.TB, d *dispatcher.Dispatcher, name, label string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() != label {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}
