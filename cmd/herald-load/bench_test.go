package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/redistest"
)

const benchSecret = "bench-test-secret-0123456789abcdef0123"

// TestBenchWorkerProcess is not a test: it is the body of the worker
// processes that the bench tests start by running this test binary again
// (benchSpawn), since `herald-load bench worker` needs the real binary.
func TestBenchWorkerProcess(t *testing.T) {
	if os.Getenv("HERALD_LOAD_TEST_WORKER") != "1" {
		return
	}
	args := os.Args[slices.Index(os.Args, "--")+1:]
	if err := runBenchWorker(context.Background(), args, os.Stdin, os.Stdout); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// useTestWorkers makes bench start its workers from this test binary.
func useTestWorkers(t *testing.T) {
	old := benchSpawn
	benchSpawn = func(args []string) (*exec.Cmd, error) {
		cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestBenchWorkerProcess$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), "HERALD_LOAD_TEST_WORKER=1")
		return cmd, nil
	}
	t.Cleanup(func() { benchSpawn = old })
}

// runBenchJSON runs the bench and decodes its JSON line.
func runBenchJSON(t *testing.T, args ...string) (benchSummary, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := bench(t.Context(), args, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var s benchSummary
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &s); jerr != nil {
		t.Fatalf("last line is not the JSON summary: %v\nstdout:\n%s\nstderr:\n%s", jerr, out.String(), errOut.String())
	}
	if err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	return s, out.String()
}

func TestBenchPersonalAndBroadcast(t *testing.T) {
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	ws, metrics, redisURL := d.ws, d.metrics, d.redisURL
	common := []string{"--edges", ws, "--redis-url", redisURL, "--secret", benchSecret, "--clients", "20", "--workers", "2",
		"--metrics", "dev=" + metrics, "--connect-timeout", "20s", "--drain-timeout", "5s", "--timeout", "60s"}

	profiles := t.TempDir()
	s, out := runBenchJSON(t, append(common, "--mode", "personal", "--rate", "1000", "--duration", "200ms", "--label", "tiny",
		"--cpu-profile", profiles)...)
	if s.Connected != 20 || s.Expected != 200 || s.Delivered != 200 || s.Lost != 0 || s.Extra != 0 || s.Foreign != 0 {
		t.Fatalf("personal: connected %d, expected %d, delivered %d, lost %d, extra %d, foreign %d\n%s",
			s.Connected, s.Expected, s.Delivered, s.Lost, s.Extra, s.Foreign, out)
	}
	if s.LatencyMS == nil || s.LatencyMS.N != 200 || s.LatencyMS.Max <= 0 || s.LatencyMS.P50 > s.LatencyMS.P99 || s.OK == nil || !*s.OK {
		t.Fatalf("personal latency %+v, ok %v\n%s", s.LatencyMS, s.OK, out)
	}
	if len(s.Processes) != 1 || !s.Processes[0].Edge || s.Processes[0].Sessions != 20 || s.Processes[0].RSSMB[0] <= 0 {
		t.Fatalf("processes %+v", s.Processes)
	}
	if !strings.Contains(out, "latency ms") || !strings.Contains(out, "tiny (personal)") {
		t.Fatalf("no table:\n%s", out)
	}
	for _, name := range []string{"dev-tiny.pprof", "worker0-tiny.pprof", "worker1-tiny.pprof"} {
		if fi, err := os.Stat(profiles + "/" + name); err != nil || fi.Size() == 0 || len(s.Profiles) != 3 {
			t.Fatalf("cpu profile %s: %v, %v", name, s.Profiles, err)
		}
	}
	var inWindows uint64
	for _, w := range s.Windows {
		inWindows += w.N
	}
	if len(s.Windows) == 0 || s.Windows[0].FromS > 0 || s.Windows[0].FromS <= -5 || inWindows != 200 {
		t.Fatalf("latency windows %+v: want the first publish in the first, 200 notifications in all", s.Windows)
	}
	if s.DrainEnd != "complete" || s.CoordinatorCPUS <= 0 || s.LoadCPUS <= 0 {
		t.Fatalf("drain end %q, coordinator cpu %v, load cpu %v", s.DrainEnd, s.CoordinatorCPUS, s.LoadCPUS)
	}

	s, out = runBenchJSON(t, append(common, "--mode", "broadcast", "--tenant", "bcast", "--rounds", "3", "--round-gap", "10ms")...)
	if s.BroadcastMS == nil || s.BroadcastMS.Complete != 3 || s.Delivered != 60 || s.Expected != 60 || s.BroadcastMS.Median <= 0 {
		t.Fatalf("broadcast: %+v, delivered %d of %d\n%s", s.BroadcastMS, s.Delivered, s.Expected, out)
	}
}

func TestBenchIdleWritesMarkdown(t *testing.T) {
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	ws, metrics, redisURL := d.ws, d.metrics, d.redisURL
	md := t.TempDir() + "/load.md"
	s, _ := runBenchJSON(t, "--mode", "idle", "--edges", ws, "--redis-url", redisURL, "--secret", benchSecret,
		"--clients", "10", "--workers", "1", "--settle", "100ms", "--metrics", "edge="+metrics, "--md", md, "--json")
	if s.Connected != 10 || s.Processes[0].Goroutines[1] <= s.Processes[0].Goroutines[0] || s.Verdict != "OK" {
		t.Fatalf("idle: %+v", s)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### idle, ", "Command: `herald-load bench --mode idle", "load average", "edge memory", `"mode":"idle"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b)
		}
	}
}

func TestBenchWorkerFailureIsReported(t *testing.T) {
	old := benchSpawn
	benchSpawn = func(args []string) (*exec.Cmd, error) { return exec.Command("false"), nil }
	t.Cleanup(func() { benchSpawn = old })
	srv := redistest.Start(t)
	var out bytes.Buffer
	err := bench(t.Context(), []string{"--mode", "idle", "--clients", "2", "--redis-url", srv.URL(), "--secret", benchSecret,
		"--connect-timeout", "10s"}, &out, io.Discard)
	if !errors.Is(err, errWorkerDied) {
		t.Fatalf("err = %v, want errWorkerDied\n%s", err, out.String())
	}
}

func TestBenchFlags(t *testing.T) {
	t.Setenv(secretEnv, benchSecret)
	o, err := parseBenchFlags([]string{"--clients", "20000"})
	if err != nil || o.workers != 2 || o.mode != modePersonal || len(o.run) != 8 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if a, err := netip.ParseAddr(o.sourceBase); err != nil || !a.IsLoopback() || strings.HasPrefix(o.sourceBase, "127.0.0.") {
		t.Fatalf("auto source base %q: %v", o.sourceBase, err)
	}
	for _, args := range [][]string{
		{"--mode", "soak"},
		{"--clients", "0"},
		{"--clients", "40000", "--workers", "2"},
		{"--mode", "personal", "--rate", "0"},
		{"--tenant", "a:b"},
		{"--workers", "5", "--clients", "4"},
	} {
		if _, err := parseBenchFlags(args); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	t.Setenv(secretEnv, "short")
	if _, err := parseBenchFlags(nil); !errors.Is(err, errUsage) {
		t.Errorf("short secret: %v", err)
	}
}

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
`
	m, err := parseMetrics(strings.NewReader(text), sampledMetrics)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{metricCPU: 12.5, metricRSS: 1 << 20, metricGoroutines: 42, metricSessions: 7}
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
	if _, err := sourceAddrs("127.255.255.255", 2); !errors.Is(err, errUsage) {
		t.Fatalf("past loopback: %v", err)
	}
}

// verifyNoLeaks checks, after every other clean-up of the test, that no
// goroutine is left.
func verifyNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		leakcheck.VerifyNone(t)
	})
}

func TestParseBenchData(t *testing.T) {
	b := appendBenchData(nil, 1732550000123456, 42, "ab12")
	d, ok := parseBenchData(b)
	if !ok || d != (benchData{T: 1732550000123456, N: 42, R: "ab12"}) {
		t.Fatalf("%s -> %+v %v", b, d, ok)
	}
	// Other spellings go through the decoder and give the same.
	d, ok = parseBenchData([]byte(`{"r":"ab12", "n":42, "t":1732550000123456}`))
	if !ok || d != (benchData{T: 1732550000123456, N: 42, R: "ab12"}) {
		t.Fatalf("decoder path: %+v %v", d, ok)
	}
	for _, bad := range []string{`{"t":x,"n":1,"r":"a"}`, `nope`, `{"t":1,"n":1,"r":"A\"}`} {
		if d, ok := parseBenchData([]byte(bad)); ok && d.R != "" && d.T != 0 {
			t.Fatalf("%s accepted as %+v", bad, d)
		}
	}
}
