package wsedge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/redis/go-redis/v9"
)

// connectTopics connects a device whose token allows every topic.
func (v *env) connectTopics(e *edge, user, device string) *client {
	v.t.Helper()
	c, err := dial(v.t, e.url, v.token(user, device, time.Hour, "*"))
	if err != nil {
		v.t.Fatal(err)
	}
	if f := c.next(); f["t"] != "welcome" {
		v.t.Fatalf("first frame %v, want welcome", f)
	}
	return c
}

// flood writes frame n times without reading, and stops at the first
// failed write (the server may close the connection meanwhile).
func (c *client) flood(frame string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range n {
		if c.conn.Write(ctx, websocket.MessageText, []byte(frame)) != nil {
			return
		}
	}
}

// limited reads until an error frame, which must be rate_limited, and then
// until the connection ends, with 4029.
func (c *client) limited() {
	c.t.Helper()
	for {
		m, err := c.read(10 * time.Second)
		if err != nil {
			c.t.Fatalf("connection ended (%v, close code %d) before an error frame", err, websocket.CloseStatus(err))
		}
		if m["t"] == "error" {
			if m["code"] != "rate_limited" {
				c.t.Fatalf("error frame %v, want code rate_limited", m)
			}
			break
		}
	}
	if code := c.closeCode(); code != wsedge.StatusTooMany {
		c.t.Fatalf("close code %d after rate_limited, want 4029", code)
	}
}

// pingPong sends a ping and expects the next frame to be its pong: every
// frame sent before it has been handled.
func (c *client) pingPong() {
	c.t.Helper()
	c.send(`{"t":"ping"}`)
	if m := c.next(); m["t"] != "pong" {
		c.t.Fatalf("got %v, want pong", m)
	}
}

func TestClientFrameFloodIsLimited(t *testing.T) {
	tests := []struct {
		name   string
		mut    func(*wsedge.Config)
		frame  string
		n      int
		metric string
		reason string
	}{
		{"frames", func(c *wsedge.Config) { c.ClientFrameRate, c.ClientFrameBurst = 10, 50 },
			`{"t":"ping"}`, 200, "herald_edge_limit_frames_total", "frame_rate"},
		{"bytes", func(c *wsedge.Config) { c.ReadLimit, c.ClientByteRate, c.ClientByteBurst = 2048, 1000, 4096 },
			`{"t":"ping"}` + strings.Repeat(" ", 1000), 20, "herald_edge_limit_bytes_total", "byte_rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t)
			e := v.startEdge("", tt.mut)
			c := v.connect(e, "u1", "phone")
			c.flood(tt.frame, tt.n)
			c.limited()
			if n := metric(t, e.Collectors(), tt.metric); n != 1 {
				t.Errorf("%s = %v, want 1", tt.metric, n)
			}
			if n := metric(t, e.Collectors(), "herald_edge_audit_total", "reason", tt.reason); n != 1 {
				t.Errorf("audit %s = %v, want 1", tt.reason, n)
			}
			// Another session of the user is not affected.
			v.connect(e, "u1", "tablet").pingPong()
		})
	}
}

// TestPubFloodIsLimited: the built-in pub limit (defaults: 10/s, bursts
// of 20) holds without any Gate, and what it refuses never reaches Redis.
func TestPubFloodIsLimited(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "u1", "phone")
	c.flood(`{"t":"pub","type":"chat.message","data":{"text":"hi"}}`, 200)
	c.limited()
	if n := metric(t, e.Collectors(), "herald_edge_limit_pubs_total"); n != 1 {
		t.Errorf("herald_edge_limit_pubs_total = %v, want 1", n)
	}
	if n := v.rdb.XLen(context.Background(), keys.Space{}.Upstream()).Val(); n < 20 || n > 50 {
		t.Errorf("upstream holds %d entries, want the burst of 20 and what refilled meanwhile (at most 50)", n)
	}
}

func TestUpstreamStreamIsBounded(t *testing.T) {
	const pub = `{"t":"pub","type":"chat.message","data":{"text":"hi"}}`
	noPubLimit := func(c *wsedge.Config) { c.PubRate, c.PubByteRate = -1, -1 }
	ctx := context.Background()
	upstream := keys.Space{}.Upstream()

	t.Run("length", func(t *testing.T) {
		v := newEnv(t)
		e := v.startEdge("", func(c *wsedge.Config) { noPubLimit(c); c.UpstreamMaxLen = 100 })
		c := v.connect(e, "u1", "phone")
		c.flood(pub, 600)
		c.pingPong()
		if n := v.rdb.XLen(ctx, upstream).Val(); n > 250 {
			t.Fatalf("upstream holds %d entries after 600 pubs, want about 100 (MAXLEN ~ 100)", n)
		}
	})
	t.Run("age", func(t *testing.T) {
		v := newEnv(t)
		e := v.startEdge("", func(c *wsedge.Config) { noPubLimit(c); c.UpstreamMaxAge = 500 * time.Millisecond })
		c := v.connect(e, "u1", "phone")
		c.flood(pub, 600)
		c.pingPong()
		time.Sleep(600 * time.Millisecond) // every entry is old now
		c.send(pub)
		c.pingPong()
		// Approximate trimming keeps the radix-tree node (up to 100
		// entries) that the new entry went into.
		if n := v.rdb.XLen(ctx, upstream).Val(); n > 150 {
			t.Fatalf("upstream holds %d entries of 601, want the old ones trimmed (MINID ~)", n)
		}
		if n := metric(t, e.Collectors(), "herald_edge_upstream_trimmed_total"); n < 450 {
			t.Errorf("herald_edge_upstream_trimmed_total = %v, want at least 450", n)
		}
	})
}

func TestTooManySubscriptions(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connectTopics(e, "u1", "phone")
	for i := range 64 {
		c.send(fmt.Sprintf(`{"t":"sub","topic":"t%d"}`, i))
	}
	c.pingPong() // the 64 subs are accepted (no error frame)
	c.send(`{"t":"sub","topic":"t0"}`)
	c.pingPong() // a topic already followed is not one more
	c.send(`{"t":"sub","topic":"t64"}`)
	if m := c.next(); m["t"] != "error" || m["code"] != "too_many_subscriptions" {
		t.Fatalf("65th sub: got %v, want error too_many_subscriptions", m)
	}
	c.pingPong() // the session stays open
	if n := metric(t, e.Collectors(), "herald_edge_limit_subscriptions_total"); n != 1 {
		t.Errorf("herald_edge_limit_subscriptions_total = %v, want 1", n)
	}
	if n := metric(t, e.Collectors(), "herald_edge_audit_total", "reason", "too_many_subscriptions"); n != 1 {
		t.Errorf("audit too_many_subscriptions = %v, want 1", n)
	}

	// After an unsub there is room again, and the new topic is followed.
	c.send(`{"t":"unsub","topic":"t5"}`)
	c.send(`{"t":"sub","topic":"t64"}`)
	c.pingPong()
	v.publish(keys.TopicFeed("acme", "t64"), 1, nil)
	if n := c.notifications(1)[0]; n.Feed != "topic:t64" {
		t.Fatalf("notification of feed %q, want topic:t64", n.Feed)
	}
}

func TestUnsubForgetsPosition(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	ctx := context.Background()
	acks := keys.Space{}.Acks("acme", "u1", "phone")
	c := v.connectTopics(e, "u1", "phone")
	c.send(`{"t":"sub","topic":"news"}`)
	c.pingPong()
	v.publish(keys.TopicFeed("acme", "news"), 3, nil)
	ns := c.notifications(3)
	c.ack(ns[2])
	want := ns[2].ID[:strings.Index(ns[2].ID, "-")] + ":3"
	eventually(t, "position in the store and copied to Redis", func() bool {
		ps, _ := e.store.Acks("acme", "u1", "phone")
		return ps["topic:news"].Seq == 3 && e.store.UnflushedLen() == 0 && v.rdb.HGet(ctx, acks, "topic:news").Val() == want
	})

	c.send(`{"t":"unsub","topic":"news"}`)
	c.pingPong()
	ps, err := e.store.Acks("acme", "u1", "phone")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ps["topic:news"]; ok {
		t.Errorf("store still holds topic:news at %s:%d", p.Epoch, p.Seq)
	}
	got, err := v.rdb.HGetAll(ctx, acks).Result()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := got["topic:news"]; ok {
		t.Errorf("redis still holds topic:news at %s", p)
	}
	if got["user"] == "" || got["tenant"] == "" {
		t.Errorf("redis positions %v: the user and tenant feeds' must stay", got)
	}
	if n := metric(t, e.Collectors(), "herald_edge_positions_forgotten_total"); n != 1 {
		t.Errorf("herald_edge_positions_forgotten_total = %v, want 1", n)
	}
}

// TestDeviceCapEvictsOldest: the 33rd device of a user deletes the
// positions of the least recently connected one that is offline.
func TestDeviceCapEvictsOldest(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.MaxConnsPerUser = 64 })
	ctx := context.Background()
	sp := keys.Space{}
	f := keys.UserFeed("acme", "u1")
	device := func(i int) string { return fmt.Sprintf("d%02d", i) }

	// d00 acks a notification, its position reaches Redis, and it leaves.
	old := v.connect(e, "u1", device(0))
	v.publish(f, 1, nil)
	old.ack(old.notifications(1)[0])
	eventually(t, "d00's ack copied to Redis", func() bool {
		ps, _ := e.store.Acks("acme", "u1", device(0))
		return ps["user"].Seq == 1 && e.store.UnflushedLen() == 0
	})
	old.conn.Close(websocket.StatusNormalClosure, "")
	eventually(t, "d00 offline", func() bool {
		return !v.rdb.HExists(ctx, sp.Presence("acme", "u1"), device(0)).Val()
	})

	for i := 1; i <= 31; i++ {
		v.connect(e, "u1", device(i))
	}
	if n := v.rdb.Exists(ctx, sp.Acks("acme", "u1", device(0))).Val(); n != 1 {
		t.Fatal("d00's positions are gone with 32 devices: the cap is 32")
	}
	v.connect(e, "u1", device(32))
	eventually(t, "d00 evicted", func() bool {
		return v.rdb.Exists(ctx, sp.Acks("acme", "u1", device(0))).Val() == 0
	})
	if err := v.rdb.ZScore(ctx, sp.Devices("acme", "u1"), device(0)).Err(); err != redis.Nil {
		t.Errorf("d00 still in the device set (err %v)", err)
	}
	if n := v.rdb.ZCard(ctx, sp.Devices("acme", "u1")).Val(); n != 32 {
		t.Errorf("device set holds %d devices, want 32", n)
	}
	for i := 1; i <= 32; i++ {
		if v.rdb.Exists(ctx, sp.Acks("acme", "u1", device(i))).Val() != 1 {
			t.Errorf("%s lost its positions", device(i))
		}
	}
	if ps, _ := e.store.Acks("acme", "u1", device(0)); len(ps) != 0 {
		t.Errorf("the store still holds d00's positions %v", ps)
	}
	if n := metric(t, e.Collectors(), "herald_edge_devices_evicted_total"); n != 1 {
		t.Errorf("herald_edge_devices_evicted_total = %v, want 1", n)
	}
}

// TestWellBehavedClientIsNotLimited: with the default limits, a client that
// acks each of 1,000 replayed notifications one by one (a naive client:
// acks are cumulative) is not limited; a flood of pings still is.
func TestWellBehavedClientIsNotLimited(t *testing.T) {
	v := newEnv(t)
	// A queue long enough for the flood's pongs, so that it is the frame
	// limit, not 4008, that ends the flood.
	e := v.startEdge("", func(c *wsedge.Config) { c.SendQueue = 8192 })
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	c.conn.Close(websocket.StatusNormalClosure, "")
	v.publish(f, 1000, nil)

	c = v.connect(e, "u1", "phone")
	for i, n := range c.notifications(1000) {
		if n.Seq != uint64(i+1) { // the feed did not exist at the first connect: all of it is new
			t.Fatalf("notification %d has seq %d", i, n.Seq)
		}
		c.ack(n)
	}
	c.pingPong()
	eventually(t, "every ack stored", func() bool {
		ps, _ := e.store.Acks("acme", "u1", "phone")
		return ps["user"].Seq == 1000
	})
	for _, m := range []string{"herald_edge_limit_frames_total", "herald_edge_limit_bytes_total"} {
		if n := metric(t, e.Collectors(), m); n != 0 {
			t.Errorf("%s = %v, want 0", m, n)
		}
	}

	c.flood(`{"t":"ping"}`, 4000)
	c.limited()
}
