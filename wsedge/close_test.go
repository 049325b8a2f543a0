package wsedge_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
)

func dialCode(t *testing.T, url, token string, query ...string) websocket.StatusCode {
	t.Helper()
	c, err := dial(t, url, token, query...)
	if err != nil {
		t.Fatal(err)
	}
	return c.closeCode()
}

func TestCloseCodesAtConnect(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u1","tenant":"acme","exp":4102444800}`)) + "."
	wrongKey, _ := auth.Mint([]byte("another-secret-that-is-32-bytes-long!!"), auth.Claims{Subject: "u1", Tenant: "acme"}, time.Hour)
	expired, _ := auth.Mint(secret, auth.Claims{Subject: "u1", Tenant: "acme", Expires: time.Now().Add(-time.Hour)}, 0)
	cases := []struct {
		name  string
		token string
		query []string
		want  websocket.StatusCode
	}{
		{"missing token", "", nil, wsedge.StatusUnauthorized},
		{"garbage token", "not.a.jwt", nil, wsedge.StatusUnauthorized},
		{"alg none", none, nil, wsedge.StatusUnauthorized},
		{"wrong key", wrongKey, nil, wsedge.StatusUnauthorized},
		{"expired", expired, nil, wsedge.StatusTokenExpired},
		{"bad device", v.token("u1", "", time.Hour), []string{"device", "a/b"}, wsedge.StatusProtocolViolation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := dialCode(t, e.url, c.token, c.query...); got != c.want {
				t.Fatalf("close code %d, want %d", got, c.want)
			}
		})
	}
}

func TestTokenExpiryDuringSession(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.Heartbeat = 500 * time.Millisecond; c.TokenLeeway = time.Millisecond })
	tok, _ := auth.Mint(secret, auth.Claims{Subject: "u1", Tenant: "acme", Expires: time.Now().Add(1500 * time.Millisecond)}, 0)
	c, err := dial(t, e.url, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.closeCode(); got != wsedge.StatusTokenExpired {
		t.Fatalf("close code %d, want 4004", got)
	}
}

func TestRefreshExtendsSession(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) {
		c.Heartbeat, c.IdleTimeout, c.TokenLeeway = 500*time.Millisecond, time.Minute, time.Millisecond
	})
	tok, _ := auth.Mint(secret, auth.Claims{Subject: "u1", Tenant: "acme", Expires: time.Now().Add(1500 * time.Millisecond)}, 0)
	c, err := dial(t, e.url, tok)
	if err != nil {
		t.Fatal(err)
	}
	c.next() // welcome
	c.send(`{"t":"refresh","token":"` + v.token("u1", "", time.Hour) + `"}`)
	// Keep talking until well past the first token's exp: no 4004 comes.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		c.send(`{"t":"ping"}`)
		if m := c.next(); m["t"] != "pong" {
			t.Fatalf("got %v after refresh, want pong", m)
		}
		time.Sleep(100 * time.Millisecond) // pacing the pings, not synchronisation
	}
	// A refresh token of another user is forbidden.
	c.send(`{"t":"refresh","token":"` + v.token("u2", "", time.Hour) + `"}`)
	if got := c.closeCode(); got != wsedge.StatusForbidden {
		t.Fatalf("close code %d, want 4003", got)
	}
}

func TestTooManySessionsPerUser(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.MaxConnsPerUser = 2 })
	v.connect(e, "u1", "a")
	v.connect(e, "u1", "b")
	if got := dialCode(t, e.url, v.token("u1", "c", time.Hour)); got != wsedge.StatusTooMany {
		t.Fatalf("third device: close code %d, want 4029", got)
	}
	// The same device reconnecting replaces its session instead.
	old := v.connect(e, "u1", "a")
	_ = old
	v.connect(e, "u1", "a")
	if got := old.closeCode(); got != wsedge.StatusReplaced {
		t.Fatalf("replaced session: close code %d, want 1000", got)
	}
}

func TestConnectRatePerIP(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.ConnectRatePerIP = 1 })
	start := time.Now()
	var refused int
	for i := range 10 {
		c, err := dial(t, e.url, v.token("u"+string(rune('a'+i)), "", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		m, err := c.read(5 * time.Second)
		if err != nil {
			if websocket.CloseStatus(err) != wsedge.StatusTooMany {
				t.Fatalf("close %v, want 4029", err)
			}
			refused++
		} else if m["t"] != "welcome" {
			t.Fatalf("got %v", m)
		}
	}
	// At 1/s with a burst of 2, at most 2 + elapsed seconds get in.
	if allowed := 10 - refused; float64(allowed) > 2+time.Since(start).Seconds()+0.5 || refused == 0 {
		t.Fatalf("%d of 10 connects in %v refused, want at most 2 + 1/s let in", refused, time.Since(start))
	}
}

func TestBadFrames(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	cases := []struct {
		name  string
		frame func(c *client)
		want  websocket.StatusCode
	}{
		{"not json", func(c *client) { c.send("hello") }, wsedge.StatusProtocolViolation},
		{"unknown kind", func(c *client) { c.send(`{"t":"shout"}`) }, wsedge.StatusProtocolViolation},
		{"binary", func(c *client) {
			c.conn.Write(context.Background(), websocket.MessageBinary, []byte{1, 2})
		}, wsedge.StatusProtocolViolation},
		{"oversize", func(c *client) {
			c.send(`{"t":"pub","type":"x","data":{"a":"` + strings.Repeat("x", 200<<10) + `"}}`)
		}, wsedge.StatusTooBig},
	}
	for i, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			c := v.connect(e, "u"+string(rune('a'+i)), "d")
			cs.frame(c)
			if got := c.closeCode(); got != cs.want {
				t.Fatalf("close code %d, want %d", got, cs.want)
			}
		})
	}
	// Others are unaffected.
	c := v.connect(e, "ok", "d")
	v.publish(keys.UserFeed("acme", "ok"), 1, nil)
	c.notifications(1)
}

func TestPingAckErrorsAndPub(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "u1", "phone")
	c.send(`{"t":"ping"}`)
	if m := c.next(); m["t"] != "pong" {
		t.Fatalf("got %v, want pong", m)
	}
	c.send(`{"t":"ack","id":"nope"}`)
	if m := c.next(); m["t"] != "error" || m["code"] != "bad_ack" {
		t.Fatalf("got %v, want a bad_ack error", m)
	}
	res := v.publish(keys.UserFeed("acme", "u1"), 1, nil)
	c.notifications(1)
	c.send(`{"t":"ack","id":"` + res[0].Epoch + `-5-user"}`) // never sent
	if m := c.next(); m["t"] != "error" || m["code"] != "bad_ack" {
		t.Fatalf("got %v, want a bad_ack error for an id never sent", m)
	}
	c.send(`{"t":"pub","type":"chat.message","data":{"text":"hi"}}`)
	eventually(t, "upstream entry", func() bool {
		msgs, _ := v.rdb.XRange(context.Background(), keys.Space{}.Upstream(), "-", "+").Result()
		return len(msgs) == 1 && msgs[0].Values["user"] == "u1" && msgs[0].Values["tenant"] == "acme" &&
			msgs[0].Values["device"] == "phone" && msgs[0].Values["data"] == `{"text":"hi"}`
	})
}

func TestTopics(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c, err := dial(t, e.url, v.token("u1", "d", time.Hour, "news", "deals.*"))
	if err != nil {
		t.Fatal(err)
	}
	c.next()
	c.send(`{"t":"sub","topic":"secret"}`)
	if m := c.next(); m["t"] != "error" || m["code"] != "forbidden" {
		t.Fatalf("got %v, want forbidden", m)
	}
	c.send(`{"t":"sub","topic":"deals.shoes"}`)
	eventually(t, "subscribed", func() bool {
		n, _ := v.rdb.PubSubNumSub(context.Background(), keys.Space{}.FeedChannel(keys.TopicFeed("acme", "deals.shoes"))).Result()
		return n[keys.Space{}.FeedChannel(keys.TopicFeed("acme", "deals.shoes"))] == 1
	})
	v.publish(keys.TopicFeed("acme", "deals.shoes"), 2, nil)
	ns := c.notifications(2)
	if ns[0].Feed != "topic:deals.shoes" {
		t.Fatalf("feed %q", ns[0].Feed)
	}
	c.send(`{"t":"unsub","topic":"deals.shoes"}`)
	eventually(t, "unsubscribed", func() bool {
		n, _ := v.rdb.PubSubNumSub(context.Background(), keys.Space{}.FeedChannel(keys.TopicFeed("acme", "deals.shoes"))).Result()
		return n[keys.Space{}.FeedChannel(keys.TopicFeed("acme", "deals.shoes"))] == 0
	})
}

func TestDrainClosesWith1012(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	var cs []*client
	for i := range 5 {
		cs = append(cs, v.connect(e, "u"+string(rune('a'+i)), "d"))
	}
	go e.stop()
	for _, c := range cs {
		if got := c.closeCode(); got != wsedge.StatusRestart {
			t.Fatalf("close code %d, want 1012", got)
		}
	}
}

// The same device connecting to another edge closes its session on the
// first one with the same code as a local replacement; a session of
// another device there stays.
func TestReplacedAcrossEdges(t *testing.T) {
	v := newEnv(t)
	a := v.startEdge("", func(c *wsedge.Config) { c.EdgeID = "edge-a" })
	b := v.startEdge("", func(c *wsedge.Config) { c.EdgeID = "edge-b" })
	old := v.connect(a, "u1", "phone")
	other := v.connect(a, "u1", "tablet")
	v.connect(b, "u1", "phone")
	if got := old.closeCode(); got != wsedge.StatusReplaced {
		t.Fatalf("session on the first edge: close code %d, want %d", got, wsedge.StatusReplaced)
	}
	// The tablet on the first edge still gets its notifications.
	v.publish(keys.UserFeed("acme", "u1"), 1, nil)
	assertConsecutive(t, other.notifications(1), 1)
}
