package wsedge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

var secret = []byte("test-secret-of-at-least-32-bytes!!")

// env is one real redis-server, a feed appender standing in for the
// dispatcher, and edges on real loopback listeners.
type env struct {
	t     *testing.T
	redis *redistest.Server // nil on a cluster (newClusterEnv)
	rdb   redis.UniversalClient
	app   *feed.Appender
	src   atomic.Int64
}

func newEnv(t *testing.T) *env {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	return &env{t: t, redis: srv, rdb: rdb, app: feed.NewAppender(rdb, feed.AppendConfig{})}
}

// newClusterEnv is newEnv on a real three-master Redis Cluster.
func newClusterEnv(t *testing.T) *env {
	rdb := redistest.StartCluster(t, 3).Client(t)
	return &env{t: t, rdb: rdb, app: feed.NewAppender(rdb, feed.AppendConfig{})}
}

type edge struct {
	*wsedge.Edge
	url   string
	store *store.Store
	dir   string
	http  *httptest.Server
}

// startEdge starts an edge with its store in dir ("" for a new one).
func (v *env) startEdge(dir string, mut func(*wsedge.Config)) *edge {
	t := v.t
	if dir == "" {
		dir = t.TempDir()
	}
	st, err := store.Open(dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := auth.New(auth.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	cfg := wsedge.Config{Verifier: ver, Store: st, ConnectRatePerIP: -1, AckFlushInterval: 50 * time.Millisecond,
		OnlineRepairInterval: 200 * time.Millisecond}
	if mut != nil {
		mut(&cfg)
	}
	e, err := wsedge.New(v.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(e)
	hs.Listener = e.Listener(hs.Listener, nil)
	hs.Config.ConnContext = e.ConnContext
	hs.Start()
	ed := &edge{Edge: e, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", store: st, dir: dir, http: hs}
	t.Cleanup(ed.stop)
	return ed
}

var stopped stopSet

func (e *edge) stop() {
	if !stopped.once(e) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.Shutdown(ctx)
	e.http.Close()
	e.store.Close()
}

func (v *env) token(user, device string, ttl time.Duration, topics ...string) string {
	tok, err := auth.Mint(secret, auth.Claims{Subject: user, Tenant: "acme", Device: device, Topics: topics}, ttl)
	if err != nil {
		v.t.Fatal(err)
	}
	return tok
}

// publish appends n notifications to a feed, as the dispatcher would.
func (v *env) publish(f keys.Feed, n int, mut func(*feed.Request)) []feed.Result {
	v.t.Helper()
	reqs := make([]feed.Request, n)
	for i := range reqs {
		id := v.src.Add(1)
		reqs[i] = feed.Request{Feed: f, SourceStream: "test", SourceID: fmt.Sprintf("%d-0", id),
			Type: "order.placed", TS: time.Now().UnixMilli(), Data: []byte(fmt.Sprintf(`{"n":%d}`, id))}
		if mut != nil {
			mut(&reqs[i])
		}
	}
	res, err := v.app.Append(context.Background(), reqs)
	if err != nil {
		v.t.Fatal(err)
	}
	return res
}

// client is a real WebSocket client.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func dial(t *testing.T, rawURL, token string, query ...string) (*client, error) {
	u, _ := url.Parse(rawURL)
	q := u.Query()
	if token != "" {
		q.Set("token", token)
	}
	for i := 0; i+1 < len(query); i += 2 {
		q.Set(query[i], query[i+1])
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u.String(), nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: t, conn: c}
	t.Cleanup(func() { c.CloseNow() })
	return cl, nil
}

func (v *env) connect(e *edge, user, device string) *client {
	v.t.Helper()
	c, err := dial(v.t, e.url, v.token(user, device, time.Hour))
	if err != nil {
		v.t.Fatal(err)
	}
	if f := c.next(); f["t"] != "welcome" {
		v.t.Fatalf("first frame %v, want welcome", f)
	}
	return c
}

func (c *client) read(timeout time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ == websocket.MessageBinary { // protocol 2: read as protocol 1
		if b, err = proto2.ToJSON(b); err != nil {
			return nil, err
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("frame %.200s: %w", b, err)
	}
	return m, nil
}

func (c *client) next() map[string]any {
	c.t.Helper()
	m, err := c.read(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// notifications reads n notification frames, failing on anything else.
func (c *client) notifications(n int) []events.Notification {
	c.t.Helper()
	out := make([]events.Notification, 0, n)
	for len(out) < n {
		m := c.next()
		if m["t"] != "n" {
			c.t.Fatalf("after %d notifications got %v", len(out), m)
		}
		b, _ := json.Marshal(m)
		var x events.Notification
		json.Unmarshal(b, &x)
		out = append(out, x)
	}
	return out
}

// quiet asserts nothing arrives for d. The read's timeout closes the
// connection (coder/websocket), so call it last.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	if m, err := c.read(d); err == nil {
		c.t.Fatalf("unexpected frame %v", m)
	}
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.conn.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) ack(n events.Notification) { c.send(`{"t":"ack","id":"` + n.ID + `"}`) }

// closeCode reads until the connection ends and returns its close code.
func (c *client) closeCode() websocket.StatusCode {
	c.t.Helper()
	for {
		_, err := c.read(10 * time.Second)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return websocket.CloseStatus(err)
		}
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// seqs returns the seqs of notifications.
func seqs(ns []events.Notification) []uint64 {
	out := make([]uint64, len(ns))
	for i, n := range ns {
		out[i] = n.Seq
	}
	return out
}

func assertConsecutive(t *testing.T, ns []events.Notification, from uint64) {
	t.Helper()
	for i, n := range ns {
		if n.Seq != from+uint64(i) {
			t.Fatalf("notification %d has seq %d, want %d (all: %v)", i, n.Seq, from+uint64(i), seqs(ns))
		}
	}
}
