package ratelimit

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/alibaba/sentinel-golang/core/flow"
	"github.com/alibaba/sentinel-golang/core/hotspot"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldrt/herald/internal/leakcheck"
)

// Sentinel's state is global: no test in this package runs in parallel,
// and every test that loads rules clears them in its cleanup.
func TestMain(m *testing.M) { leakcheck.Main(m) }

func testLogger(t testing.TB) *slog.Logger {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() { sentinelLog.Store(slog.New(slog.DiscardHandler)) }) // runs last
	return log
}

// newLimiter opens the process's Limiter for the test, with yaml applied
// when it is not empty.
func newLimiter(t testing.TB, yaml string) *Limiter {
	t.Helper()
	log := testLogger(t)
	if _, bench := t.(*testing.B); bench {
		log = slog.New(slog.DiscardHandler)
	}
	l, err := New(Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		_ = hotspot.ClearRules()
		_ = flow.ClearRules()
	})
	if yaml != "" {
		if err := l.Apply(mustParse(t, yaml)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func mustParse(t testing.TB, yaml string) *Document {
	t.Helper()
	doc, err := ParseRules([]byte(yaml))
	if err != nil {
		t.Fatalf("ParseRules:\n%v\nin:\n%s", err, yaml)
	}
	return doc
}

// rules builds a document from rule bodies in YAML, indented by the
// caller as list items.
func rules(items ...string) string {
	return "version: 1\nrules:\n" + strings.Join(items, "")
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// series counts the series a collector has.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 1024)
	c.Collect(ch)
	close(ch)
	return len(ch)
}
