package wsedge_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/redis/go-redis/v9"
)

// deadEdge registers an edge whose last heartbeat was an hour ago, holding
// the presence records members ("<tenant>\x00<user>\x00<device>\x00<session>").
func (v *env) deadEdge(edge string, members ...any) {
	ctx := context.Background()
	sp := keys.Space{}
	stale := float64(time.Now().Add(-time.Hour).UnixMilli())
	v.rdb.ZAdd(ctx, sp.Edges(), redis.Z{Score: stale, Member: edge})
	v.rdb.SAdd(ctx, sp.EdgeSessions(edge), members...)
}

// An edge that stopped heartbeating loses its presence entries to a live
// edge's clean-up; a device that moved to another edge meanwhile keeps its own.
func TestDeadEdgePresenceIsCleaned(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	v.deadEdge("ghost", "acme\x00u9\x00d\x00s1", "acme\x00u8\x00d\x00s2")
	v.rdb.HSet(ctx, sp.Presence("acme", "u9"), "d", "ghost s1")
	v.rdb.HSet(ctx, sp.Presence("acme", "u8"), "d", "elsewhere s3") // moved: not the ghost's any more

	v.startEdge("", func(c *wsedge.Config) { c.PresenceTTL = 300 * time.Millisecond })
	eventually(t, "the dead edge's presence removed", func() bool {
		return v.rdb.HExists(ctx, sp.Presence("acme", "u9"), "d").Val() == false &&
			v.rdb.ZScore(ctx, sp.Edges(), "ghost").Err() == redis.Nil &&
			v.rdb.Exists(ctx, sp.EdgeSessions("ghost")).Val() == 0
	})
	if got := v.rdb.HGet(ctx, sp.Presence("acme", "u8"), "d").Val(); got != "elsewhere s3" {
		t.Fatalf("presence of a device that moved: %q", got)
	}
}

// Sessions that end at once (a client fleet dropping) remove their presence
// with a script the edge loaded at start: not one of them meets NOSCRIPT.
func TestDisconnectStormMeetsNoNoscript(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	e := v.startEdge("", nil)
	var cs []*client
	for i := range 20 {
		cs = append(cs, v.connect(e, "u"+strconv.Itoa(i), "d"))
	}
	for _, c := range cs {
		c.conn.CloseNow()
	}
	eventually(t, "every presence entry removed", func() bool {
		for i := range 20 {
			if v.rdb.Exists(ctx, keys.Space{}.Presence("acme", "u"+strconv.Itoa(i))).Val() != 0 {
				return false
			}
		}
		return true
	})
	if info := v.rdb.Info(ctx, "errorstats").Val(); strings.Contains(info, "NOSCRIPT") {
		t.Errorf("Redis answered NOSCRIPT:\n%s", info)
	}
}
