package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/heraldrt/herald/wsedge/auth"
)

// Rules distribution across edge PROCESSES: Sentinel's state is global per
// process, so two edges in one test process would share their rules. The
// edges (and `herald rules apply`) run as children: this test binary run
// again, with HERALD_TEST_RUN_MAIN=1, executing run(args) like main does.

const (
	rulesE2ESecret = "rules-e2e-secret-0123456789abcdef012345"
	rulesE2EToken  = "rules-e2e-admin-token"
	// rulesDeadline is how soon an applied document must be in force on
	// every edge.
	rulesDeadline = 2 * time.Second
)

// TestRulesMainProcess is not a test: it is the body of the child
// processes the rules end-to-end test starts (see runMainProc).
func TestRulesMainProcess(t *testing.T) {
	if os.Getenv("HERALD_TEST_RUN_MAIN") != "1" {
		return
	}
	os.Exit(run(os.Args[slices.Index(os.Args, "--")+1:]))
}

// mainCmd is `herald args...` run from this test binary.
func mainCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestRulesMainProcess$", "--"}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	// Under -race a child sleeps 1s at exit unless told not to.
	cmd.Env = append(env, "HERALD_TEST_RUN_MAIN=1", secretEnv+"="+rulesE2ESecret, "GORACE=atexit_sleep_ms=0")
	// The kernel kills the child if this process dies without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// edgeProc is one `herald edge` child process.
type edgeProc struct {
	name  string
	cmd   *exec.Cmd
	ws    string // ws://host:port/ws
	admin string // http://host:port
	logMu sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
}

func startEdgeProc(t *testing.T, name, redisURL string) *edgeProc {
	t.Helper()
	cmd := mainCmd("edge", "--redis-url", redisURL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--data-dir", t.TempDir(), "--log-format", "json", "--connect-rate-per-ip", "0",
		"--admin-token", rulesE2EToken, "--drain-timeout", "5s", "--edge-id", name)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &edgeProc{name: name, cmd: cmd, done: make(chan struct{})}
	ready := make(chan [2]string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.logMu.Lock()
			p.log.Write(sc.Bytes())
			p.log.WriteByte('\n')
			p.logMu.Unlock()
			var line struct{ Msg, Listen, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edge ready" {
				ready <- [2]string{line.Listen, line.Admin}
			}
		}
	}()
	go func() {
		<-scanned
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", p.name, p.logs())
		}
	})
	select {
	case addrs := <-ready:
		p.ws, p.admin = "ws://"+addrs[0]+"/ws", "http://"+addrs[1]
	case <-p.done:
		t.Fatalf("edge %s exited before it was ready:\n%s", name, p.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("edge %s not ready within 30s:\n%s", name, p.logs())
	}
	return p
}

func (p *edgeProc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM, waits for the drain, and kills it if it hangs.
func (p *edgeProc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("edge %s did not stop within 20s of SIGTERM; killing it", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// metric reads an unlabelled series from the edge's /metrics (-1 when it
// is absent).
func (p *edgeProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.admin + "/metrics")
	if err != nil {
		t.Fatalf("edge %s /metrics: %v", p.name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("edge %s: %s %q", p.name, name, v)
			}
			return f
		}
	}
	return -1
}

// rulesApply runs `herald rules apply FILE --yes` as a child process.
func rulesApplyProc(t *testing.T, redisURL, yaml string) (stdout, stderr string, code int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := mainCmd("rules", "apply", file, "--yes", "--by", "rules-e2e", "--redis-url", redisURL)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("herald rules apply: %v", err)
	}
	return out.String(), errOut.String(), code
}

// rulesClient is a WebSocket client of one user on one edge.
type rulesClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialRules(t *testing.T, edge *edgeProc, user string) *rulesClient {
	t.Helper()
	tok, err := auth.Mint([]byte(rulesE2ESecret), auth.Claims{Subject: user, Tenant: "acme", Device: "phone"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, edge.ws+"?token="+tok, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", edge.name, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &rulesClient{t: t, conn: conn}
	if f := c.frame(); f.T != "welcome" {
		t.Fatalf("first frame from %s: %+v, want welcome", edge.name, f)
	}
	return c
}

type rulesFrame struct {
	T    string `json:"t"`
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
}

func (c *rulesClient) frame() rulesFrame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f rulesFrame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// seqs reads n notifications and returns their seqs.
func (c *rulesClient) seqs(n int) []uint64 {
	c.t.Helper()
	var out []uint64
	for len(out) < n {
		f := c.frame()
		if f.T != "n" {
			c.t.Fatalf("after %v got frame %+v", out, f)
		}
		out = append(out, f.Seq)
	}
	return out
}

// marketingThenOrder appends n marketing notifications and one order to
// the user's feed, as the dispatcher would, and returns the order's seq.
func marketingThenOrder(t *testing.T, app *feed.Appender, user string, n int) uint64 {
	t.Helper()
	reqs := make([]feed.Request, n+1)
	for i := range reqs {
		typ := "marketing.promo"
		if i == n {
			typ = "order.placed"
		}
		reqs[i] = feed.Request{Feed: keys.UserFeed("acme", user), SourceStream: "rules-e2e",
			SourceID: fmt.Sprintf("%s-%d-%d", user, time.Now().UnixNano(), i), Type: typ, TS: time.Now().UnixMilli(), Data: []byte(`{}`)}
	}
	res, err := app.Append(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	return res[n].Seq
}

// expectLimit checks on every edge, with a new user each, that limit
// marketing notifications of 4 get through, then the order.
func expectLimit(t *testing.T, app *feed.Appender, edges []*edgeProc, user string, limit int) {
	t.Helper()
	for _, e := range edges {
		u := user + "-" + e.name
		c := dialRules(t, e, u)
		last := marketingThenOrder(t, app, u, 4)
		var want []uint64
		for s := range uint64(limit) {
			want = append(want, s+1)
		}
		want = append(want, last)
		if got := c.seqs(len(want)); !slices.Equal(got, want) {
			t.Fatalf("edge %s, user %s: got %v, want %v (a limit of %d)", e.name, u, got, want, limit)
		}
	}
}

// waitVersion polls every edge's herald_ratelimit_rules_version until it
// is v, for at most 10s from since.
func waitVersion(t *testing.T, edges []*edgeProc, v float64, since time.Time) {
	t.Helper()
	deadline := since.Add(10 * time.Second)
	for _, e := range edges {
		for e.metric(t, "herald_ratelimit_rules_version") != v {
			if time.Now().After(deadline) {
				t.Fatalf("edge %s: rules version %v after 10s, want %v", e.name, e.metric(t, "herald_ratelimit_rules_version"), v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

const rulesE2E = `version: 1
rules:
  - name: marketing-per-user
    match: {type: "marketing.*"}
    per: user
    limit: %d
    interval: 1h
    action: drop
`

// `herald rules apply` reaches two edge processes within 2 s, each then
// enforces the new limit; an invalid document is refused with the field
// named, by the CLI, the admin API and, written around them, by the edges,
// and the rules in force stay.
func TestRulesApplyReachesTwoEdgeProcesses(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	sp := keys.Space{Prefix: "herald:"}
	app := feed.NewAppender(rdb, feed.AppendConfig{Space: sp})
	var edges []*edgeProc
	for _, name := range []string{"edge-a", "edge-b"} {
		edges = append(edges, startEdgeProc(t, name, srv.URL()))
	}
	for _, e := range edges {
		if v := e.metric(t, "herald_ratelimit_rules_version"); v != 0 {
			t.Fatalf("edge %s starts at version %v, want 0", e.name, v)
		}
	}
	expectLimit(t, app, edges, "before", 4)

	for i, limit := range []int{2, 3} {
		start := time.Now()
		out, errOut, code := rulesApplyProc(t, srv.URL(), fmt.Sprintf(rulesE2E, limit))
		if code != 0 || !strings.Contains(out, fmt.Sprintf("applied version %d", i+1)) {
			t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
		}
		waitVersion(t, edges, float64(i+1), start)
		inForce := time.Now()
		st, err := ratelimit.NewStore(rdb, sp).Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// UpdatedAt is when the apply command wrote the document.
		took := inForce.Sub(st.Meta.UpdatedAt)
		t.Logf("version %d in force on both edges %v after the apply wrote it (%v after the command started)",
			i+1, took.Round(time.Millisecond), inForce.Sub(start).Round(time.Millisecond))
		if took >= rulesDeadline {
			t.Fatalf("version %d took %v from the apply to both edges, want < %v", i+1, took, rulesDeadline)
		}
		expectLimit(t, app, edges, "v"+strconv.Itoa(i+1), limit)
	}

	// Invalid through the CLI: refused before Redis, field named.
	bad := strings.Replace(fmt.Sprintf(rulesE2E, 100), "interval: 1h", "interval: 0s", 1)
	_, errOut, code := rulesApplyProc(t, srv.URL(), bad)
	if code != 1 || !strings.Contains(errOut, `line 7: rule "marketing-per-user": field interval`) || !strings.Contains(errOut, "nothing was applied") {
		t.Fatalf("invalid apply: exit %d, stderr:\n%s", code, errOut)
	}
	// Through the admin API: 400, field named.
	req, _ := http.NewRequest(http.MethodPut, edges[0].admin+"/admin/rules", strings.NewReader(bad))
	req.Header.Set("Authorization", "Bearer "+rulesE2EToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "field interval") {
		t.Fatalf("admin PUT of an invalid document: %d\n%s", resp.StatusCode, body)
	}
	// Written around both (and announced): every edge refuses it, counts it
	// and keeps version 2.
	ctx := context.Background()
	if err := rdb.HSet(ctx, sp.Rules(), "yaml", bad, "version", 3).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Publish(ctx, sp.RulesChannel(), "3")
	deadline := time.Now().Add(10 * time.Second)
	for _, e := range edges {
		for e.metric(t, "herald_ratelimit_rules_reload_errors_total") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("edge %s did not report the invalid stored document", e.name)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if v := e.metric(t, "herald_ratelimit_rules_version"); v != 2 {
			t.Fatalf("edge %s: version %v in force, want 2 kept", e.name, v)
		}
		if !strings.Contains(e.logs(), "field interval") {
			t.Fatalf("edge %s did not log the problem's field", e.name)
		}
	}
	expectLimit(t, app, edges, "after-bad", 3)
}
