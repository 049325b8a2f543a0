package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
)

// runJSON runs `herald-load run` and decodes its JSON line.
//
// A run whose figures missed their targets (errNotOK: the publisher fell
// behind on a busy machine, a p99 over the limit) is not a failure here:
// these tests check what was delivered and counted, never speed, which
// benchmarks measure.
func runJSON(t *testing.T, args ...string) (runReport, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runScenarios(t.Context(), args, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r runReport
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &r); jerr != nil {
		t.Fatalf("last line is not the JSON summary: %v\nstdout:\n%s\nstderr:\n%s", jerr, out.String(), errOut.String())
	}
	if err != nil && !errors.Is(err, errNotOK) {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errOut.String())
	}
	return r, out.String()
}

// commonArgs points a run at d with small sizes.
func commonArgs(d deployment, clients string) []string {
	return []string{"--edges", d.ws, "--redis-url", d.redisURL, "--secret", testSecret, "--clients", clients, "--workers", "2", "--clients-per-addr", "4",
		"--metrics", "edge=" + d.metrics, "--edge-data-dir", d.dataDir, "--connect-timeout", "20s", "--drain-timeout", "5s", "--timeout", "2m"}
}

func phaseNamed(t *testing.T, r runReport, name string) *phaseResult {
	t.Helper()
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no phase %q in %d phases", name, len(r.Phases))
	return nil
}

// TestRunEveryScenario runs every scenario on one deployment with the same
// 20 clients: connect (and 30 idle), a ladder of two rates, broadcast
// rounds and a reconnect storm, and checks each one's figures.
func TestRunEveryScenario(t *testing.T) {
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	profiles, md := t.TempDir(), t.TempDir()+"/run.md"
	r, out := runJSON(t, append(commonArgs(d, "20"), "--idle-clients", "30", "--settle", "100ms",
		"--rates", "500,1000", "--ladder-all", "--duration", "200ms", "--step-gap", "10ms", "--rounds", "3", "--round-gap", "10ms",
		"--storm-within", "1s", "--storm-rate", "200", "--storm-lead", "300ms", "--cpu-profile", profiles, "--md", md)...)
	// whether a rate was held depends on the machine's load: not checked
	if r.Acks != "each" || !r.Idempotency || len(r.Headlines) != 5 {
		t.Fatalf("run: ok %v, acks %q, idempotency %v, best %v, headlines %+v\n%s", r.OK, r.Acks, r.Idempotency, r.BestRate, r.Headlines, out)
	}
	c := phaseNamed(t, r, "connect")
	if c.Connect.Connected != 20 || c.Connect.ServerCPUMS <= 0 || c.Connect.ConnectMS.N != 20 || !strings.HasPrefix(c.Connect.RedisCmds, "redis: ") {
		t.Errorf("connect %+v", c.Connect)
	}
	idle := phaseNamed(t, r, "idle")
	if idle.Idle.Connections != 30 || idle.Idle.RSSPerConnB == 0 || idle.Idle.GoroutinesConn <= 0 {
		t.Errorf("idle %+v", idle.Idle)
	}
	for _, name := range []string{"personal 500/s", "personal 1000/s"} {
		p := phaseNamed(t, r, name).Personal
		if p.Published == 0 || p.Delivered != p.Published || p.Lost != 0 || p.Acks != p.Delivered || p.Foreign != 0 {
			t.Errorf("%s: %+v", name, p)
		}
		// where Redis's time went: the append script and the ingest XADD
		if !strings.Contains(p.RedisCmds, "redis: ") || !strings.Contains(p.RedisCmds, "evalsha ") || !strings.Contains(p.RedisCmds, "xadd ") {
			t.Errorf("%s: Redis commands per notification %q, want evalsha and xadd in it", name, p.RedisCmds)
		}
	}
	b := phaseNamed(t, r, "broadcast").Broadcast
	if b.Complete != 3 || b.Delivered != 60 || b.Median <= 0 || b.Acks != 60 {
		t.Errorf("broadcast %+v", b)
	}
	s := phaseNamed(t, r, "storm").Storm
	if s.Reconnected != 20 || s.Resumed != 20 || s.Personal.Lost != 0 || s.Personal.Delivered < 20 || s.LastWelcomeS <= 0 || s.LastWelcomeS > 5 {
		t.Errorf("storm %+v", s)
	}
	for _, p := range r.Phases {
		if len(p.Processes) != 2 || p.Processes[1].Role != roleRedis || p.Processes[0].FDs[1] == 0 || p.Processes[0].StoreMB[1] == 0 {
			t.Errorf("%s: processes %+v", p.Name, p.Processes)
		}
	}
	if fi, err := os.Stat(profiles + "/edge-personal-500.pprof"); err != nil || fi.Size() == 0 {
		t.Errorf("edge profile: %v", err)
	}
	b2, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### herald-load run, ", "Command: `herald-load run --edges", "| personal | highest personal rate", "== storm", `"acks":"each"`, "redis/notif "} {
		if !strings.Contains(string(b2), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b2)
		}
	}
}

func TestWorkerFailureIsReported(t *testing.T) {
	old := spawnWorker
	spawnWorker = func(args []string) (*exec.Cmd, error) { return exec.Command("false"), nil }
	t.Cleanup(func() { spawnWorker = old })
	srv := redistest.Start(t)
	var out bytes.Buffer
	err := runScenarios(t.Context(), []string{"--scenarios", "personal", "--clients", "2", "--redis-url", srv.URL(), "--secret", testSecret,
		"--connect-timeout", "10s"}, &out, io.Discard)
	if !errors.Is(err, errWorkerDied) {
		t.Fatalf("err = %v, want errWorkerDied\n%s", err, out.String())
	}
}

func TestRunFlags(t *testing.T) {
	t.Setenv(secretEnv, testSecret)
	o, err := parseRunFlags([]string{"--scenarios", "storm,connect"})
	if err != nil || o.workers != 1 || o.clients != 10000 || o.acks.kind != ackEach || !o.idempotency || len(o.run) != 8 ||
		strings.Join(o.scenarios, ",") != "connect,storm" || len(o.rates) != 5 || o.rates[4] != 20000 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	if a, err := netip.ParseAddr(o.sourceBase); err != nil || !a.IsLoopback() || strings.HasPrefix(o.sourceBase, "127.0.0.") {
		t.Fatalf("auto source base %q: %v", o.sourceBase, err)
	}
	if o, err := parseRunFlags([]string{"--clients", "20000"}); err != nil || o.workers != 2 {
		t.Fatalf("20000 clients: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--scenarios", "soak"},
		{"--scenarios", ""},
		{"--clients", "0"},
		{"--clients", "40000", "--workers", "2"},
		{"--rates", "0"},
		{"--rates", "1000,x"},
		{"--acks", "sometimes"},
		{"--workers", "5", "--clients", "4"},
		{"--target", "nats"},
	} {
		if _, err := parseRunFlags(args); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	// The target's own checks run when it opens.
	o, err = parseRunFlags([]string{"--tenant", "a:b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.tf["herald"].open(targetCommon{tenant: o.tenant}); !errors.Is(err, errUsage) {
		t.Errorf("bad tenant: %v", err)
	}
	t.Setenv(secretEnv, "short")
	o, _ = parseRunFlags(nil)
	if _, err := o.tf["herald"].open(targetCommon{tenant: "t"}); !errors.Is(err, errUsage) {
		t.Errorf("short secret: %v", err)
	}
}
