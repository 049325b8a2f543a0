package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMain fails the run if goroutines outlive the tests: every Store must
// stop its writer and pebble's goroutines on Close.
func TestMain(m *testing.M) {
	before := len(goroutines())
	code := m.Run()
	if code == 0 {
		if err := waitGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// goroutines returns the stacks of running goroutines, leaving out the
// os/signal loop that the testing package starts for fuzzing and timeouts.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "os/signal.signal_recv") {
			out = append(out, g)
		}
	}
	return out
}

// waitGoroutines polls until at most n goroutines run, or reports the stacks.
func waitGoroutines(n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		gs := goroutines()
		if len(gs) <= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("goroutine leak: %d running, want <= %d\n%s", len(gs), n, strings.Join(gs, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openTest opens a store in dir (a new temp dir if empty) and closes it when
// the test ends.
func openTest(t testing.TB, dir string, cfg Config) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func pos(tenant, user, device, feed, epoch string, seq uint64) AckPosition {
	return AckPosition{Tenant: tenant, User: user, Device: device, Feed: feed, Epoch: epoch, Seq: seq}
}

// same reports whether a and b name the same position at the same epoch and seq.
func same(a, b AckPosition) bool {
	return a.Tenant == b.Tenant && a.User == b.User && a.Device == b.Device &&
		a.Feed == b.Feed && a.Epoch == b.Epoch && a.Seq == b.Seq
}

func fmtPositions(ps []AckPosition) string {
	var b bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&b, "[%s %s %s %s %s:%d] ", p.Tenant, p.User, p.Device, p.Feed, p.Epoch, p.Seq)
	}
	return b.String()
}

// metricValue gathers the store's collectors through a fresh registry (which
// also checks they register cleanly) and returns the value of one metric:
// a counter's or gauge's value, or a histogram's sample count (or its sum,
// when name is the histogram's name with "_sum").
func metricValue(t testing.TB, s *Store, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name && mf.GetName()+"_sum" != name {
			continue
		}
		m := mf.GetMetric()[0]
		if h := m.GetHistogram(); h != nil && strings.HasSuffix(name, "_sum") {
			return h.GetSampleSum()
		}
		return m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
