package wsedge_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/redis/go-redis/v9"
)

// Every way a session ends gives back its socket, its goroutines and its
// place in the edge. Clients vanish as phones and laptops do: their
// process is killed, their connection is reset, or they go silent; and the
// edge ends sessions itself (refusal, replacement, slow consumer, idle).
// Each case compares the process's open descriptors, goroutines and the
// edge's sessions with a baseline taken after a warm-up round of the same
// size, so that pools (Redis connections, writers) have already grown.

const leakClients = 40

// resources is what a session may leave behind.
type resources struct{ fds, goroutines, sessions int }

func measure(t *testing.T, e *edge) resources {
	t.Helper()
	return resources{fds: countDescriptors(t), goroutines: runtime.NumGoroutine(), sessions: e.Sessions()}
}

// countDescriptors counts the process's descriptors other than files on
// disk: sockets, pipes, epoll and timer descriptors, which is what a
// session holds. Files are left out because Pebble opens and closes its
// own (a flush, a compaction) whenever it likes, which is not a leak.
func countDescriptors(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count descriptors: %v", err)
	}
	n := 0
	for _, ent := range ents {
		target, err := os.Readlink("/proc/self/fd/" + ent.Name())
		if err != nil { // closed since the listing
			continue
		}
		if !strings.HasPrefix(target, "/") {
			n++
		}
	}
	return n
}

// awaitBaseline polls until the descriptors and goroutines are back within
// slack of base and no session is left, or fails after 20 s (a silent
// peer's close handshake alone may wait 5 s).
func awaitBaseline(t *testing.T, e *edge, base resources, what string) {
	t.Helper()
	const fdSlack, goSlack = 2, 4
	deadline := time.Now().Add(20 * time.Second)
	for {
		now := measure(t, e)
		if now.fds <= base.fds+fdSlack && now.goroutines <= base.goroutines+goSlack && now.sessions == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not back to baseline after 20s: now %+v, baseline %+v", what, now, base)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawDial connects one WebSocket client and keeps its TCP connection, so a
// test can reset it without any WebSocket close.
func rawDial(t *testing.T, wsURL, token string) (*websocket.Conn, *net.TCPConn) {
	t.Helper()
	var tcp *net.TCPConn
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			tcp = c.(*net.TCPConn)
		}
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL+"?token="+url.QueryEscape(token), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, b, err := c.Read(ctx); err != nil || len(b) == 0 {
		t.Fatalf("welcome: %v", err)
	}
	return c, tcp
}

// vanish is one way for a round of clients to leave.
type vanish struct {
	name  string
	round func(t *testing.T, v *env, e *edge, n int)
}

var vanishings = []vanish{
	{"close handshake", func(t *testing.T, v *env, e *edge, n int) {
		for i := range n {
			c := v.connect(e, "u"+strconv.Itoa(i), "d")
			c.conn.Close(websocket.StatusNormalClosure, "bye")
		}
	}},
	{"fin without close frame", func(t *testing.T, v *env, e *edge, n int) {
		for i := range n {
			_, tcp := rawDial(t, e.url, v.token("u"+strconv.Itoa(i), "d", time.Hour))
			tcp.Close()
		}
	}},
	{"reset (SO_LINGER 0)", func(t *testing.T, v *env, e *edge, n int) {
		for i := range n {
			_, tcp := rawDial(t, e.url, v.token("u"+strconv.Itoa(i), "d", time.Hour))
			tcp.SetLinger(0)
			tcp.Close()
		}
	}},
	{"client process killed", func(t *testing.T, v *env, e *edge, n int) {
		killedClients(t, e.url, v, n)
	}},
	{"refused at the handshake", func(t *testing.T, v *env, e *edge, n int) {
		for range n {
			if code := dialCode(t, e.url, "not-a-token"); code != wsedge.StatusUnauthorized {
				t.Fatalf("bad token got %d", code)
			}
		}
	}},
	{"replaced by the same device, then reset", func(t *testing.T, v *env, e *edge, n int) {
		for i := range n {
			tok := v.token("u"+strconv.Itoa(i), "d", time.Hour)
			_, first := rawDial(t, e.url, tok)
			_, second := rawDial(t, e.url, tok)
			first.SetLinger(0)
			first.Close()
			second.SetLinger(0)
			second.Close()
		}
	}},
}

func TestEverySessionEndReleasesItsResources(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	for _, w := range vanishings {
		t.Run(w.name, func(t *testing.T) {
			w.round(t, v, e, leakClients) // warm-up: pools grow to this size
			awaitBaseline(t, e, resources{fds: 1 << 30, goroutines: 1 << 30}, "warm-up")
			base := measure(t, e)
			for range 3 {
				w.round(t, v, e, leakClients)
			}
			awaitBaseline(t, e, base, w.name)
		})
	}
}

// A peer that goes silent (no FIN, no RST: its network vanished) is found
// by the heartbeat: no pong within the idle timeout ends the session, and
// its socket is released although the close handshake never completes.
func TestSilentPeerIsDroppedByHeartbeat(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) {
		c.Heartbeat = 200 * time.Millisecond
		c.IdleTimeout = 600 * time.Millisecond
	})
	round := func() []*net.TCPConn {
		var held []*net.TCPConn
		for i := range leakClients {
			// The client never reads again: it answers no ping and
			// never sees the close frame, like a peer behind a dead link.
			_, tcp := rawDial(t, e.url, v.token("u"+strconv.Itoa(i), "d", time.Hour))
			held = append(held, tcp)
		}
		return held
	}
	warm := round()
	awaitSessions(t, e, 0)
	for _, c := range warm {
		c.Close()
	}
	awaitBaseline(t, e, resources{fds: 1 << 30, goroutines: 1 << 30}, "warm-up")
	base := measure(t, e)
	held := round()
	// The edge must drop them while the clients still hold their ends.
	awaitSessions(t, e, 0)
	base.fds += len(held) // the test's own ends are still open
	awaitBaseline(t, e, base, "silent peers")
	for _, c := range held {
		c.Close()
	}
}

func awaitSessions(t *testing.T, e *edge, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("sessions %d, want %d", e.Sessions(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killedClients runs n clients in a child process (this test binary,
// re-executed as TestHelperClientProcess), waits until all have their
// welcome, and kills the process with SIGKILL: the kernel closes their
// sockets, and no WebSocket close frame is ever sent.
func killedClients(t *testing.T, wsURL string, v *env, n int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperClientProcess$")
	cmd.Env = append(os.Environ(), "HERALD_TEST_CLIENT_URL="+wsURL)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	for i := range n {
		fmt.Fprintln(in, v.token("u"+strconv.Itoa(i), "d", time.Hour))
	}
	in.Close()
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "ready" {
			break
		}
	}
	if sc.Text() != "ready" {
		t.Fatalf("client process did not get ready: %v", sc.Err())
	}
	if e := cmd.Process.Kill(); e != nil {
		t.Fatal(e)
	}
}

// TestHelperClientProcess is the child of killedClients: it connects one
// client per token on stdin, prints "ready" once all have their welcome,
// and waits to be killed.
func TestHelperClientProcess(t *testing.T) {
	wsURL := os.Getenv("HERALD_TEST_CLIENT_URL")
	if wsURL == "" {
		t.Skip("run by killedClients only")
	}
	sc := bufio.NewScanner(os.Stdin)
	var conns []*websocket.Conn
	for sc.Scan() {
		c, _ := rawDial(t, wsURL, sc.Text())
		conns = append(conns, c)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed long before
	_ = conns
}

// A slow consumer (4008) and a drained edge (1012) release their sessions
// too: the edge ends them itself, while the clients still hold their ends.
func TestEdgeEndedSessionsReleaseTheirResources(t *testing.T) {
	v := newEnv(t)
	// Fixed pools: the publisher's big pipelines must not grow the
	// process's Redis connections between the warm-up and the measure.
	fixed := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: v.redis.Addr(), PoolSize: 4, MinIdleConns: 4})
		t.Cleanup(func() { c.Close() })
		return c
	}
	v.rdb = fixed()
	v.app = feed.NewAppender(fixed(), feed.AppendConfig{})
	e := v.startEdge("", func(c *wsedge.Config) { c.SendQueue = 4; c.WriteTimeout = 2 * time.Second })
	big := []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	round := func() []*net.TCPConn {
		var held []*net.TCPConn
		for i := range 10 {
			user := "slow" + strconv.Itoa(i)
			_, tcp := rawDial(t, e.url, v.token(user, "d", time.Hour))
			held = append(held, tcp)
			// The client reads nothing: its socket buffers fill, then its
			// queue, and the edge closes it with 4008.
			v.publish(keys.UserFeed("acme", user), 64, func(r *feed.Request) { r.Data = big })
		}
		return held
	}
	warm := round()
	awaitSessions(t, e, 0)
	for _, c := range warm {
		c.SetLinger(0)
		c.Close()
	}
	awaitBaseline(t, e, resources{fds: 1 << 30, goroutines: 1 << 30}, "warm-up")
	base := measure(t, e)
	held := round()
	awaitSessions(t, e, 0)
	base.fds += len(held)
	awaitBaseline(t, e, base, "slow consumers")
	for _, c := range held {
		c.SetLinger(0)
		c.Close()
	}

	// Drain: every session closed with 1012 and released; the edge's own
	// goroutines stop (the leak checker sees the rest at the end).
	for i := range leakClients {
		v.connect(e, "d"+strconv.Itoa(i), "d")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.Sessions(); n != 0 {
		t.Fatalf("%d sessions after the drain", n)
	}
}
