package wsedge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
)

func TestLiveNotificationsInOrder(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "u1", "phone")
	v.publish(keys.UserFeed("acme", "u1"), 50, nil)
	ns := c.notifications(50)
	assertConsecutive(t, ns, 1)
	if ns[0].Feed != "user" || ns[0].Type != "order.placed" || ns[0].ID == "" {
		t.Fatalf("first notification %+v", ns[0])
	}
}

func TestTwoDevicesBothReceive(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	phone, laptop := v.connect(e, "u1", "phone"), v.connect(e, "u1", "laptop")
	v.publish(keys.UserFeed("acme", "u1"), 5, nil)
	assertConsecutive(t, phone.notifications(5), 1)
	assertConsecutive(t, laptop.notifications(5), 1)
}

func TestDeviceTargeting(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	phone, laptop := v.connect(e, "u1", "phone"), v.connect(e, "u1", "laptop")
	f := keys.UserFeed("acme", "u1")
	v.publish(f, 1, func(r *feed.Request) { r.Device = "phone" })
	v.publish(f, 1, nil)
	if ns := phone.notifications(2); ns[0].Seq != 1 || ns[1].Seq != 2 {
		t.Fatalf("phone got %v", seqs(ns))
	}
	if ns := laptop.notifications(1); ns[0].Seq != 2 {
		t.Fatalf("laptop got seq %d, want only 2", ns[0].Seq)
	}
}

func TestExpiredNotificationNotPushed(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c := v.connect(e, "u1", "phone")
	f := keys.UserFeed("acme", "u1")
	v.publish(f, 1, func(r *feed.Request) { r.Exp = time.Now().Add(-time.Second).UnixMilli() })
	v.publish(f, 1, nil)
	if ns := c.notifications(1); ns[0].Seq != 2 {
		t.Fatalf("got seq %d, want the expired seq 1 skipped", ns[0].Seq)
	}
}

func TestTenantBroadcast(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	var cs []*client
	for i := range 20 {
		cs = append(cs, v.connect(e, fmt.Sprintf("u%d", i), "d"))
	}
	v.publish(keys.TenantFeed("acme"), 3, nil)
	for _, c := range cs {
		ns := c.notifications(3)
		assertConsecutive(t, ns, 1)
		if ns[0].Feed != "tenant" {
			t.Fatalf("feed %q", ns[0].Feed)
		}
	}
}

// A device offline during 1,000 notifications gets all of them, in order,
// exactly once, when it reconnects.
func TestOfflineReplayExactlyOnce(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	v.publish(f, 10, nil)
	ns := c.notifications(10)
	c.ack(ns[9])
	eventually(t, "ack stored", func() bool {
		ps, _ := e.store.Acks("acme", "u1", "phone")
		return ps["user"].Seq == 10
	})
	c.conn.Close(websocket.StatusNormalClosure, "")

	v.publish(f, 1000, nil)
	c = v.connect(e, "u1", "phone")
	ns = c.notifications(1000)
	assertConsecutive(t, ns, 11)
	v.publish(f, 1, nil) // live continues right after the replay
	if n := c.notifications(1); n[0].Seq != 1011 {
		t.Fatalf("live after replay: seq %d", n[0].Seq)
	}
	c.quiet(200 * time.Millisecond)
}

// Notifications published while a device replays are neither lost nor
// duplicated at the switch from replay to live.
func TestReplayToLiveSwitch(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.ReplayBatch = 7 })
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	c.conn.Close(websocket.StatusNormalClosure, "")
	v.publish(f, 300, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 30 {
			v.publish(f, 10, nil)
		}
	}()
	c = v.connect(e, "u1", "phone")
	ns := c.notifications(600)
	<-done
	assertConsecutive(t, ns, 1)
	c.quiet(200 * time.Millisecond)
}

func TestResumeFromClientPosition(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	res := v.publish(f, 20, nil)
	c.notifications(20)
	c.send(fmt.Sprintf(`{"t":"resume","feeds":{"user":{"epoch":%q,"seq":15}}}`, res[0].Epoch))
	assertConsecutive(t, c.notifications(5), 16)
}

func TestAckPositionsSurviveRestartAndMoveEdges(t *testing.T) {
	v := newEnv(t)
	e1 := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e1, "u1", "phone")
	v.publish(f, 30, nil)
	ns := c.notifications(30)
	c.ack(ns[19])
	eventually(t, "ack in Redis", func() bool {
		v, _ := v.rdb.HGet(context.Background(), keys.Space{}.Acks("acme", "u1", "phone"), "user").Result()
		return len(v) > 0 && v[len(v)-3:] == ":20"
	})
	c.conn.Close(websocket.StatusNormalClosure, "")
	e1.stop()

	// The same data directory after a restart.
	e1b := v.startEdge(e1.dir, nil)
	c = v.connect(e1b, "u1", "phone")
	assertConsecutive(t, c.notifications(10), 21)
	c.conn.Close(websocket.StatusNormalClosure, "")
	e1b.stop()

	// A different edge, with an empty store, resumes from Redis.
	e2 := v.startEdge("", nil)
	c = v.connect(e2, "u1", "phone")
	assertConsecutive(t, c.notifications(10), 21)
}

func TestSlowConsumerIsCutAndCatchesUp(t *testing.T) {
	v := newEnv(t)
	v.app = feed.NewAppender(v.rdb, feed.AppendConfig{MaxLen: 5000})
	e := v.startEdge("", func(c *wsedge.Config) { c.SendQueue = 8; c.WriteTimeout = 5 * time.Second })
	f := keys.UserFeed("acme", "slow")
	c := v.connect(e, "slow", "phone")
	big := `{"pad":"` + strings.Repeat("x", 16<<10) + `"}`
	// The client reads nothing while 2,000 notifications of 16 KiB arrive.
	for range 20 {
		v.publish(f, 100, func(r *feed.Request) { r.Data = []byte(big) })
	}
	eventually(t, "session closed with 4008", func() bool {
		ss, _ := e.store.RecentlyClosed(10)
		return len(ss) > 0 && ss[0].CloseCode == 4008
	})
	c.conn.CloseNow()
	c = v.connect(e, "slow", "phone")
	ns := c.notifications(2000)
	assertConsecutive(t, ns, 1)
}

// A Pub/Sub connection killed by Redis is re-established, and what was
// published meanwhile is fetched from the feed.
func TestPubSubDropIsFilled(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	v.publish(f, 5, nil)
	c.notifications(5)
	ctx := context.Background()
	if err := v.rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	v.publish(f, 50, nil) // some of these are published with nobody subscribed
	assertConsecutive(t, c.notifications(50), 6)
}

// An entry whose publish never reached the edge is fetched before anything
// newer is pushed.
func TestGapIsFilledBeforeNewerEntries(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	v.publish(f, 2, nil)
	c.notifications(2)
	// Append seq 3 to the stream without publishing it.
	ctx := context.Background()
	sp := keys.Space{}
	v.rdb.XAdd(ctx, redisXAdd{Stream: sp.FeedStream(f), ID: "3-0", Values: []any{"type", "order.placed", "ts", "1", "data", `{"silent":true}`}}.args())
	v.rdb.HIncrBy(ctx, sp.FeedMeta(f), "seq", 1)
	v.publish(f, 1, nil) // seq 4, published
	ns := c.notifications(2)
	assertConsecutive(t, ns, 3)
	if string(ns[0].Data) != `{"silent":true}` {
		t.Fatalf("gap entry data %s", ns[0].Data)
	}
}

func TestTrimmedHistoryGivesReset(t *testing.T) {
	v := newEnv(t)
	v.app = feed.NewAppender(v.rdb, feed.AppendConfig{MaxLen: 10})
	e := v.startEdge("", nil)
	f := keys.UserFeed("acme", "u1")
	c := v.connect(e, "u1", "phone")
	v.publish(f, 1, nil)
	c.ack(c.notifications(1)[0])
	eventually(t, "ack stored", func() bool { ps, _ := e.store.Acks("acme", "u1", "phone"); return ps["user"].Seq == 1 })
	c.conn.Close(websocket.StatusNormalClosure, "")
	v.publish(f, 1000, nil)
	c = v.connect(e, "u1", "phone")
	if m := c.next(); m["t"] != "reset" || m["feed"] != "user" {
		t.Fatalf("got %v, want a reset of feed user", m)
	}
	ns := c.notifications(3)
	if ns[0].Seq < 900 {
		t.Fatalf("after reset got seq %d", ns[0].Seq)
	}
	assertConsecutive(t, ns, ns[0].Seq)
}

// At its welcome, a new device's first positions are in Redis: the head of
// a feed that exists, "any epoch" for one that does not. A device that
// already has a position keeps it, and catches up from it.
func TestFirstPositionsInRedisAtWelcome(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	ctx := context.Background()
	f := keys.UserFeed("acme", "u1")
	v.publish(f, 3, nil)
	c := v.connect(e, "u1", "phone")
	got, err := v.rdb.HGetAll(ctx, keys.Space{}.Acks("acme", "u1", "phone")).Result()
	if err != nil {
		t.Fatal(err)
	}
	epoch, seq, ok := strings.Cut(got["user"], ":")
	if !ok || epoch == "" || seq != "3" {
		t.Fatalf("user feed position at welcome %q, want the head (seq 3)", got["user"])
	}
	if got["tenant"] != "*:0" {
		t.Fatalf("tenant feed (not created yet) position %q, want \"*:0\"", got["tenant"])
	}
	// What is published after the welcome arrives; nothing from before.
	v.publish(f, 2, nil)
	assertConsecutive(t, c.notifications(2), 4)

	// Another device of the same user that has a position keeps it: it
	// replays from there rather than starting at the head.
	k := keys.Space{}.Acks("acme", "u1", "tablet")
	if err := v.rdb.HSet(ctx, k, "user", epoch+":1").Err(); err != nil {
		t.Fatal(err)
	}
	tab := v.connect(e, "u1", "tablet")
	assertConsecutive(t, tab.notifications(4), 2)
	if s, _ := v.rdb.HGet(ctx, k, "user").Result(); s != epoch+":1" {
		t.Fatalf("the tablet's position was overwritten: %q", s)
	}
}
