package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHistogram(t *testing.T) {
	var h histogram
	for v := int64(1); v <= 100000; v++ {
		h.record(v)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000
		if got := float64(h.quantile(q)); got < want || got > want*1.008 {
			t.Errorf("q%.3f = %.0f, want %.0f within 0.8%%", q, got, want)
		}
	}
	if h.quantile(1) != 100000 || h.n.Load() != 100000 {
		t.Fatalf("max %d, n %d", h.quantile(1), h.n.Load())
	}
	var a, b, m histogram
	a.record(5)
	a.record(300)
	b.record(1 << 45) // clamped into the last bucket, max kept exact
	b.record(-3)
	m.merge(a.data())
	m.merge(b.data())
	if m.n.Load() != 4 || m.quantile(0.25) != 0 || m.quantile(0.5) != 5 || m.max.Load() != 1<<45 {
		t.Fatalf("merged: n %d, q25 %d, q50 %d, max %d", m.n.Load(), m.quantile(0.25), m.quantile(0.5), m.max.Load())
	}
	for v := uint64(0); v < 1<<20; v += 37 {
		if i := histBucket(v); histUpper(i) < v || (i > 0 && histUpper(i-1) >= v) {
			t.Fatalf("value %d in bucket %d [.., %d], previous ends at %d", v, i, histUpper(i), histUpper(i-1))
		}
	}
	if med, p90 := medianP90([]float64{5, 1, 3, 2, 4, 10, 6, 7, 8, 9}); med != 5.5 || p90 != 9 {
		t.Fatalf("median %v p90 %v", med, p90)
	}
}

// TestLatencyWindows: latencies are grouped by publish time in 5 s
// windows; workers' windows merge; windows before the first publish are
// left out and the rest start relative to it.
func TestLatencyWindows(t *testing.T) {
	const start = 1_000_002_000_000 // 2 s into a window
	var w1, w2, all windowHists
	w1.record(start, 1000)
	w1.record(start+1_000_000, 3000)
	w1.record(start+6_000_000, 50_000)  // the next window
	w1.record(start+13_000_000, 70_000) // after an empty one (a stall)
	w2.record(start+2_000_000, 2000)
	w2.record(start-3_000_000, 9000) // the window before: published before the run
	all.merge(w1.data())
	all.merge(w2.data())
	got := all.summaries(start)
	if len(got) != 4 {
		t.Fatalf("windows %+v, want 4", got)
	}
	if got[2].FromS != 8 || got[2].N != 0 || got[3].FromS != 13 || got[3].Max != 70 {
		t.Errorf("windows 3 and 4 %+v %+v: want an empty one from 8 s, then one from 13 s with max 70 ms", got[2], got[3])
	}
	if got[0].FromS != -2 || got[0].N != 3 || got[0].Max != 3 || got[0].P50 < 2 || got[0].P50 > 2.02 {
		t.Errorf("first window %+v: want from -2 s, 3 values, median 2 ms (within a bucket), max 3 ms", got[0])
	}
	if got[1].FromS != 3 || got[1].N != 1 || got[1].Max != 50 {
		t.Errorf("second window %+v: want from 3 s, 1 value, max 50 ms", got[1])
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total x
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.048576e+06
go_goroutines 42
herald_edge_sessions{edge="a"} 3
herald_edge_sessions{edge="b",x="}"} 4
herald_edge_sessions_total 99
process_open_fds 9
`
	m, err := parseMetrics(strings.NewReader(text), sampledMetrics)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricCPU: 12.5, metricRSS: 1 << 20, metricGoroutines: 42, metricSessions: 7, metricFDs: 9}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	eps, err := parseEndpoints("edge=http://127.0.0.1:9091/metrics, http://127.0.0.1:9092/metrics")
	if err != nil || len(eps) != 2 || eps[0].Name != "edge" || eps[1].Name != "127.0.0.1:9092" {
		t.Fatalf("endpoints %+v, %v", eps, err)
	}
	if _, err := parseEndpoints("edge=127.0.0.1:9091"); !errors.Is(err, errUsage) {
		t.Fatalf("no scheme: %v", err)
	}
	addrs, err := sourceAddrs("127.0.0.254", 2)
	if err != nil || addrs[1] != "127.0.0.255" {
		t.Fatalf("addrs %v, %v", addrs, err)
	}
	if next := nextAddr("127.0.0.254", 3); next != "127.0.1.1" {
		t.Fatalf("3 after 127.0.0.254: %s", next)
	}
	cfg := fleetConfig{count: 1001, workers: 2, perAddr: 500} // 500 and 501 clients
	if cfg.addrsFor(500) != 1 || cfg.addrsFor(501) != 2 || cfg.addrs() != 3 {
		t.Fatalf("addresses: %d for 500, %d for 501, %d in all", cfg.addrsFor(500), cfg.addrsFor(501), cfg.addrs())
	}
	if _, err := sourceAddrs("127.255.255.255", 2); !errors.Is(err, errUsage) {
		t.Fatalf("past loopback: %v", err)
	}
}

func TestParsePayload(t *testing.T) {
	b := appendPayload(nil, 1732550000123456, 42, "ab12")
	d, ok := parsePayload(b)
	if !ok || d != (payload{T: 1732550000123456, N: 42, R: "ab12"}) {
		t.Fatalf("%s -> %+v %v", b, d, ok)
	}
	// Other spellings go through the decoder and give the same.
	d, ok = parsePayload([]byte(`{"r":"ab12", "n":42, "t":1732550000123456}`))
	if !ok || d != (payload{T: 1732550000123456, N: 42, R: "ab12"}) {
		t.Fatalf("decoder path: %+v %v", d, ok)
	}
	for _, bad := range []string{`{"t":x,"n":1,"r":"a"}`, `nope`, `{"t":1,"n":1,"r":"A\"}`} {
		if d, ok := parsePayload([]byte(bad)); ok && d.R != "" && d.T != 0 {
			t.Fatalf("%s accepted as %+v", bad, d)
		}
	}
}

// TestProcStat reads this test process's own /proc entry.
func TestProcStat(t *testing.T) {
	m := make(map[string]float64)
	procStat(os.Getpid(), m)
	if m[metricCPU] <= 0 || m[metricRSS] < 1<<20 || m[metricFDs] < 3 {
		t.Fatalf("/proc/self: %v", m)
	}
	m = map[string]float64{metricCPU: -1}
	procStat(os.Getpid(), m)
	if m[metricCPU] != -1 {
		t.Fatalf("a figure given by another source was overwritten: %v", m)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), make([]byte, 1000), 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "sub", "b"), make([]byte, 24), 0o644)
	if n, err := dirBytes(dir); err != nil || n != 1024 {
		t.Fatalf("dirBytes %d, %v; want 1024", n, err)
	}
	if key := idempotencyKey("ab12p3", 42); key != "ab12p3-42" {
		t.Fatalf("idempotency key %q", key)
	}
}

// An order payload reads back through the fast path, and is about the
// size of a typical event.
func TestOrderPayload(t *testing.T) {
	for _, n := range []int64{0, 1, 42, 1 << 40} {
		b := withOrder(appendPayload(nil, 1732550000123456, n, "ab12"), n)
		if !json.Valid(b) || len(b) < 280 || len(b) > 330 {
			t.Fatalf("%d bytes, valid JSON %v: %s", len(b), json.Valid(b), b)
		}
		d, ok := parsePayload(b)
		if !ok || d.N != n || d.R != "ab12" || d.T != 1732550000123456 {
			t.Fatalf("parsed %+v %v from %s", d, ok, b)
		}
	}
}

func TestCommandStats(t *testing.T) {
	before, after := map[string]float64{}, map[string]float64{}
	if commandCosts(before, map[string]float64{metricCmdRead: 1, metricCmdUsec + "xadd": 5, metricCmdCalls + "xadd": 1}) != nil {
		t.Fatal("costs from a reading without the section: every command since Redis started")
	}
	for line, m := range map[string]map[string]float64{
		"# Commandstats": before,
		"cmdstat_xadd:calls=10,usec=100,usec_per_call=10.00,rejected_calls=0,failed_calls=0": before,
		"cmdstat_get:calls=5,usec=5,usec_per_call=1.00":                                      before,
		"cmdstat_xadd:calls=30,usec=400,usec_per_call=13.33":                                 after,
		"cmdstat_get:calls=5,usec=5,usec_per_call=1.00 ":                                     after, // not called in between
		"cmdstat_evalsha:calls=2,usec=900,usec_per_call=450.00":                              after, // new
		"cmdstat_xinfo|groups:calls=1,usec=3":                                                after,
	} {
		if !parseCommandStats(strings.TrimSpace(line), m) {
			t.Fatalf("%q not read", line)
		}
	}
	if !parseCommandStats("# Commandstats", after) || after[metricCmdRead] != 1 {
		t.Fatal("the section's header not noted")
	}
	if parseCommandStats("used_cpu_sys:1.5", after) || parseCommandStats("cmdstat_:calls=1", after) {
		t.Fatal("a line of another kind was read as a command's")
	}
	got := commandCosts(before, after)
	want := []cmdCost{{"evalsha", 2, 900}, {"xadd", 20, 300}, {"xinfo|groups", 1, 3}}
	if !slices.Equal(got, want) {
		t.Fatalf("costs %+v, want %+v", got, want)
	}
	if s := costsPer(got[:2], 100); s != "evalsha 9.00 µs (0.020 calls), xadd 3.00 µs (0.200 calls)" {
		t.Fatalf("per notification: %q", s)
	}
}
