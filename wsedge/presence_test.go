package wsedge_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/redis/go-redis/v9"
)

// An edge that stopped heartbeating loses its presence entries to a live
// edge's clean-up; a device that moved to another edge meanwhile keeps its own.
func TestDeadEdgePresenceIsCleaned(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	stale := float64(time.Now().Add(-time.Hour).UnixMilli())
	v.rdb.ZAdd(ctx, sp.Edges(), redis.Z{Score: stale, Member: "ghost"})
	v.rdb.SAdd(ctx, sp.EdgeSessions("ghost"), "acme\x00u9\x00d\x00s1", "acme\x00u8\x00d\x00s2")
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
