package wsedge_test

import (
	"context"
	"testing"

	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
)

// TestEdgeOnRedisCluster runs an edge on a real three-master Redis
// Cluster through every Redis script and multi-key path a session takes:
// set-up (positions, presence, online counts), delivery and acks, the
// eviction of a device's positions (evictdevices.lua), the inbox scripts
// behind an unread frame, and presence removal when sessions end
// (delIfOwner). A script whose keys were in two slots would fail with
// CROSSSLOT here and leave presence behind.
func TestEdgeOnRedisCluster(t *testing.T) {
	v := newClusterEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.MaxDevicesPerUser = 1 })
	sp := keys.Space{}
	ctx := context.Background()

	a := v.connect(e, "u1", "a")
	v.publish(keys.UserFeed("acme", "u1"), 3, nil)
	for _, n := range a.notifications(3) {
		a.ack(n)
	}
	eventually(t, "device a's position copied to Redis", func() bool {
		pos, _ := v.rdb.HGet(ctx, sp.Acks("acme", "u1", "a"), "user").Result()
		return len(pos) > 2 && pos[len(pos)-2:] == ":3"
	})
	a.conn.CloseNow()
	eventually(t, "device a's presence removed", func() bool {
		return v.rdb.HLen(ctx, sp.Presence("acme", "u1")).Val() == 0 && v.rdb.SCard(ctx, sp.OnlineUsers("acme")).Val() == 0
	})

	// A second device past the cap of one evicts the first one's positions.
	b := v.connect(e, "u1", "b")
	eventually(t, "device a's positions evicted", func() bool {
		return v.rdb.Exists(ctx, sp.Acks("acme", "u1", "a")).Val() == 0
	})
	if v.rdb.SCard(ctx, sp.OnlineUsers("acme")).Val() != 1 {
		t.Fatal("u1 is not online")
	}

	// Marking read reaches the live session as an unread frame.
	ib := inbox.New(v.rdb, sp, inbox.Config{})
	u := inbox.User{Tenant: "acme", User: "u1", Device: "b"}
	if n, err := ib.Unread(ctx, u); err != nil || n != 3 {
		t.Fatalf("unread: %d %v", n, err)
	}
	if _, err := ib.MarkRead(ctx, u, inbox.Mark{All: true}); err != nil {
		t.Fatal(err)
	}
	if err := ib.Announce(ctx, "acme", "u1"); err != nil {
		t.Fatal(err)
	}
	for {
		f := b.next()
		if f["t"] == "unread" {
			if f["count"] != float64(0) {
				t.Fatalf("unread frame %v", f)
			}
			break
		}
	}
	b.conn.CloseNow()
	eventually(t, "device b's presence and the edge's entries removed", func() bool {
		return v.rdb.HLen(ctx, sp.Presence("acme", "u1")).Val() == 0 &&
			v.rdb.SCard(ctx, sp.EdgeSessions(e.ID())).Val() == 0 &&
			v.rdb.SCard(ctx, sp.OnlineUsers("acme")).Val() == 0
	})
}
