package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// centrifugoBinary installs centrifugo into the module's gitignored bin/
// (a few minutes the first time, seconds after), or skips the test when
// it cannot be installed: the only reason a comparison is not tested.
func centrifugoBinary(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), installTimeout)
	defer cancel()
	bin, err := centrifugo.Install(ctx, filepath.Join("..", "..", "bin"))
	if err != nil {
		t.Skipf("SKIP: centrifugo %s cannot be installed, so the comparison cannot run: %v", centrifugo.Version, err)
	}
	return bin
}

// TestCompareSideBySide runs the same 20 clients through every scenario
// against Herald, then Centrifugo without and with history, and checks
// that each target delivered to every client and that the ratio table is
// there.
func TestCompareSideBySide(t *testing.T) {
	bin := centrifugoBinary(t)
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	md := filepath.Join(t.TempDir(), "compare.md")
	args := append(commonArgs(d, "20"), "--centrifugo-bin", bin, "--idle-clients", "30", "--settle", "100ms",
		"--rates", "500,1000", "--ref-rate", "1000", "--duration", "300ms", "--step-gap", "10ms", "--rounds", "3", "--round-gap", "10ms",
		"--storm-within", "1s", "--storm-rate", "200", "--storm-lead", "300ms", "--md", md)
	var out, errOut bytes.Buffer
	err := compare(t.Context(), args, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var c compareReport
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &c); jerr != nil || err != nil {
		t.Fatalf("compare: %v; JSON line: %v\nstdout:\n%s\nstderr:\n%s", err, jerr, out.String(), errOut.String())
	}
	if !c.OK || len(c.Runs) != 3 || strings.Join(c.Targets, ",") != "herald,centrifugo,centrifugo-history" {
		t.Fatalf("compare: ok %v, %d runs, targets %v\n%s", c.OK, len(c.Runs), c.Targets, out.String())
	}
	for _, r := range c.Runs {
		checkDelivered(t, r)
	}
	checkFigures(t, &c)
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"### Side by side, ", "| herald / centrifugo |", "| herald / centrifugo-history |",
		"RSS per idle connection", "### herald-load compare: centrifugo-history, ", "not recoverable"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b)
		}
	}
}

// checkDelivered checks that every client of r had every event of every
// phase: the storm's only where the target resumes.
func checkDelivered(t *testing.T, r *runReport) {
	t.Helper()
	if r.Clients != 20 || len(r.Errors) > 0 {
		t.Errorf("%s: %d clients, errors %v", r.Target, r.Clients, r.Errors)
	}
	for _, name := range []string{"personal 500/s", "personal 1000/s"} {
		p := phaseNamed(t, *r, name).Personal
		if p.Published == 0 || p.Delivered != p.Published || p.Lost != 0 || p.Foreign != 0 {
			t.Errorf("%s %s: %+v", r.Target, name, p)
		}
		if want := p.Delivered; r.Traits.Acks && p.Acks != want || !r.Traits.Acks && p.Acks != 0 {
			t.Errorf("%s %s: %d acks for %d notifications", r.Target, name, p.Acks, p.Delivered)
		}
	}
	if b := phaseNamed(t, *r, "broadcast").Broadcast; b.Complete != 3 || b.Delivered != 60 {
		t.Errorf("%s broadcast: %+v", r.Target, b)
	}
	s := phaseNamed(t, *r, "storm").Storm
	if s.Reconnected != 20 || s.LastWelcomeS <= 0 || s.Resume != r.Traits.Resume {
		t.Errorf("%s storm: %+v", r.Target, s)
	}
	if s.Resume && (s.Resumed != 20 || s.Personal.Lost != 0) {
		t.Errorf("%s storm: %d resumed, %d lost", r.Target, s.Resumed, s.Personal.Lost)
	}
	if !s.Resume && s.Personal.Delivered+s.NotRecoverable != s.Personal.Expected {
		t.Errorf("%s storm: %d delivered + %d not recoverable, %d expected", r.Target, s.Personal.Delivered, s.NotRecoverable, s.Personal.Expected)
	}
	for _, p := range r.Phases {
		if len(p.Processes) < 2 || p.Processes[0].Role != roleEdge || p.Processes[len(p.Processes)-1].Role != roleRedis {
			t.Errorf("%s %s: processes %+v", r.Target, p.Name, p.Processes)
		}
	}
}

// checkFigures checks the ratio table: every figure of every target
// measured (or n/a where the target has no such thing), and a ratio for
// each that both sides have.
func checkFigures(t *testing.T, c *compareReport) {
	t.Helper()
	byKey := map[string]figure{}
	for _, f := range c.Figures {
		byKey[f.Key] = f
	}
	for _, key := range []string{"rss_per_idle_conn_b", "cpu_per_conn_ms", "personal_p50_ms", "personal_p99_ms", "best_rate",
		"broadcast_median_ms", "broadcast_max_ms", "redis_us_per_notif", "storm_last_welcome_s"} {
		f, ok := byKey[key]
		if !ok {
			t.Errorf("no figure %s", key)
			continue
		}
		for _, tg := range c.Targets {
			if f.Values[tg] == nil {
				t.Errorf("%s: no value for %s", key, tg)
			}
		}
		for _, tg := range c.Targets[1:] {
			if f.Ratios[tg] == nil && f.RatioT[tg] != "both 0" {
				t.Errorf("%s: no ratio herald/%s (%q)", key, tg, f.RatioT[tg])
			}
		}
	}
	if f := byKey["storm_lost"]; f.Values["centrifugo"] != nil || !strings.Contains(f.Text["centrifugo"], "not recoverable") || f.RatioT["centrifugo"] != "—" {
		t.Errorf("storm_lost of centrifugo without history: %+v", f)
	}
	if f := byKey["personal_acks"]; f.Values["herald"] == nil || f.Values["centrifugo"] != nil || f.Text["centrifugo-history"] == "" {
		t.Errorf("acks: %+v", f)
	}
}

func TestCompareFlags(t *testing.T) {
	t.Setenv(secretEnv, testSecret)
	o, err := parseCompareFlags(nil)
	if err != nil || o.refRate != 10000 || o.target != "herald" || len(o.targets) != 3 {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	for _, args := range [][]string{
		{"--targets", "herald"},
		{"--targets", "herald,nats"},
		{"--targets", "herald,centrifugo,herald"},
		{"--ref-rate", "-1"},
		{"--centrifugo-bin"},
	} {
		if _, err := parseCompareFlags(args); !errors.Is(err, errUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	o, _ = parseCompareFlags([]string{"--centrifugo-redis", "localhost"})
	if _, err := o.tf["centrifugo"].open(o.common()); !errors.Is(err, errUsage) {
		t.Errorf("--centrifugo-redis without a port: %v", err)
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct {
		a, b *float64
		want string
	}{
		{val(1), val(2), "0.50×"}, {val(3), val(1), "3.00×"}, {nil, val(1), "—"}, {val(1), nil, "—"},
		{val(0), val(0), "both 0"}, {val(2), val(0), "∞"}, {val(0), val(4), "0.00×"},
	} {
		if _, got := ratio(tc.a, tc.b); got != tc.want {
			t.Errorf("ratio(%v, %v) = %q, want %q", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestCentrifugoProto reads the frames of a connection with history and of
// its reconnect: the connect command names the position, recovered and
// live publications count once, each ping gets one pong.
func TestCentrifugoProto(t *testing.T) {
	side, err := func() (ClientSide, error) {
		t.Setenv(centrifugoTokenEnv, "secret")
		return centrifugoClientSide([]string{"--url", "ws://127.0.0.1:1/connection/websocket", "--history"})
	}()
	if err != nil {
		t.Fatal(err)
	}
	p := side.Client(7)
	if hello := p.Hello(); len(hello) != 1 || bytes.Contains(hello[0], []byte(`"subs"`)) {
		t.Fatalf("first connect: %s", hello)
	}
	read := func(msg string) Msg {
		t.Helper()
		m, err := p.Read([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := read(`{"id":1,"connect":{"client":"c","subs":{"personal:#u7":{"recoverable":true,"epoch":"E","offset":4,"positioned":true}},"ping":25,"pong":true}}`)
	if !m.Welcome || m.Resumed || len(m.Payloads) != 0 {
		t.Fatalf("connect reply: %+v", m)
	}
	m = read(`{"push":{"channel":"personal:#u7","pub":{"data":{"n":5},"offset":5}}}` + "\n{}\n{}")
	if len(m.Payloads) != 1 || string(m.Payloads[0]) != `{"n":5}` || len(m.Reply) != 2 || string(m.Reply[0]) != "{}" {
		t.Fatalf("push and pings: %+v", m)
	}
	hello := p.Hello()
	if len(hello) != 1 || !bytes.Contains(hello[0], []byte(`"subs":{"personal:#u7":{"recover":true,"offset":5,"epoch":"E"}}`)) {
		t.Fatalf("reconnect: %s", hello)
	}
	m = read(`{"id":2,"connect":{"subs":{"personal:#u7":{"recoverable":true,"epoch":"E","offset":5,"publications":[{"data":{"n":6},"offset":6},{"data":{"n":7},"offset":7}],"recovered":true,"was_recovering":true}},"pong":true}}`)
	if !m.Welcome || !m.Resumed || len(m.Payloads) != 2 || m.Problem != "" {
		t.Fatalf("recovering connect reply: %+v", m)
	}
	m = read(`{"push":{"channel":"personal:#u7","pub":{"data":{"n":7},"offset":7}}}`)
	if len(m.Payloads) != 0 || m.Duplicates != 1 {
		t.Fatalf("a recovered publication again: %+v", m)
	}
	m = read(`{"id":3,"connect":{"subs":{"personal:#u7":{"recoverable":true,"epoch":"F","offset":9,"was_recovering":true}}}}`)
	if !m.Resumed || !strings.Contains(m.Problem, "recovery incomplete") {
		t.Fatalf("a failed recovery: %+v", m)
	}
	if p.Acks() != nil || !p.Terminal(3500) || p.Terminal(3001) || p.Terminal(-1) || p.Terminal(1006) {
		t.Error("acks or close codes")
	}
}
