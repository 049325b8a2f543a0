package wsedge_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge"
	"github.com/redis/go-redis/v9"
)

// onlineUsers is the tenant acme's online-users set, sorted.
func (v *env) onlineUsers() []string {
	m := v.rdb.SMembers(context.Background(), keys.Space{}.OnlineUsers("acme")).Val()
	slices.Sort(m)
	return m
}

// denySREM makes every SREM fail (NOPERM) until the returned func is
// called: a removal that fails half-way, after the presence entry went.
func (v *env) denySREM(t *testing.T) (restore func()) {
	t.Helper()
	ctx := context.Background()
	if err := v.rdb.Do(ctx, "ACL", "SETUSER", "default", "-srem").Err(); err != nil {
		t.Fatal(err)
	}
	restore = func() {
		if err := v.rdb.Do(ctx, "ACL", "SETUSER", "default", "+srem").Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// A dead edge leaves users in the online set: one whose presence entry it
// still held (u9), and one whose entry it had removed just before it died,
// before it could take the user out of the set (u7). The other edges' clean-up and
// repair leave only the user who still has a device (u8, moved elsewhere).
func TestOnlineUsersConvergeAfterDeadEdge(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	v.deadEdge("ghost", "acme\x00u9\x00d\x00s1", "acme\x00u8\x00d\x00s2")
	v.rdb.SAdd(ctx, sp.EdgeTenants("ghost"), "acme")
	v.rdb.HSet(ctx, sp.Online("acme"), "ghost", "3")
	v.rdb.HSet(ctx, sp.Presence("acme", "u9"), "d", "ghost s1")
	v.rdb.HSet(ctx, sp.Presence("acme", "u8"), "d", "elsewhere s3")
	v.rdb.SAdd(ctx, sp.OnlineUsers("acme"), "u7", "u8", "u9")

	v.startEdge("", func(c *wsedge.Config) { c.PresenceTTL = 300 * time.Millisecond })
	eventually(t, "the dead edge's users out of the online set", func() bool {
		return slices.Equal(v.onlineUsers(), []string{"u8"}) &&
			v.rdb.ZScore(ctx, sp.Edges(), "ghost").Err() == redis.Nil
	})
	if n := v.rdb.Exists(ctx, sp.EdgeSessions("ghost"), sp.EdgeTenants("ghost")).Val(); n != 0 {
		t.Fatalf("%d of the dead edge's records left", n)
	}
}

// The clean-up after a dead edge fails between removing the edge's presence
// entries and taking their users out of the online set (SREM refused): the
// dead edge's records stay, and a later clean-up finishes the work.
func TestOnlineUsersDeadEdgeCleanUpResumesAfterFailure(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	v.deadEdge("ghost", "acme\x00u9\x00d\x00s1")
	v.rdb.HSet(ctx, sp.Presence("acme", "u9"), "d", "ghost s1")
	v.rdb.SAdd(ctx, sp.OnlineUsers("acme"), "u9")

	restore := v.denySREM(t)
	v.startEdge("", func(c *wsedge.Config) { c.PresenceTTL = 300 * time.Millisecond })
	eventually(t, "a clean-up refused half-way", func() bool {
		return v.rdb.HLen(ctx, sp.Presence("acme", "u9")).Val() == 0 && nopermErrors(t, v) > 0
	})
	restore()
	eventually(t, "u9 out of the online set", func() bool { return len(v.onlineUsers()) == 0 })
}

// An ended session's removal fails after its presence entry went (SREM
// refused, both attempts): the user must not stay online for good.
func TestOnlineUsersRepairedAfterFailedRemoval(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	e := v.startEdge("", nil)
	stay := v.connect(e, "u2", "d")
	gone := v.connect(e, "u1", "d")
	if got := v.onlineUsers(); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("online users %v", got)
	}
	restore := v.denySREM(t)
	gone.conn.CloseNow()
	eventually(t, "the reaper gave up", func() bool {
		return metric(t, e.Collectors(), "herald_edge_presence_remove_errors_total") > 0
	})
	if n := v.rdb.HLen(ctx, keys.Space{}.Presence("acme", "u1")).Val(); n != 0 {
		t.Fatalf("u1 has %d presence entries", n)
	}
	restore()
	eventually(t, "u1 out of the online set", func() bool { return slices.Equal(v.onlineUsers(), []string{"u2"}) })
	stay.conn.CloseNow()
	eventually(t, "u2 out of the online set", func() bool { return len(v.onlineUsers()) == 0 })
}

// A user online on a live edge, but missing from the set (another edge
// took the user out and died before it checked again), is added back.
func TestOnlineUsersRegainsALiveUser(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	e := v.startEdge("", nil)
	v.connect(e, "u1", "d")
	v.rdb.SRem(ctx, keys.Space{}.OnlineUsers("acme"), "u1")
	eventually(t, "u1 back in the online set", func() bool { return slices.Equal(v.onlineUsers(), []string{"u1"}) })
}

// denyOnlineSREM makes SREM fail (NOPERM) on every key but the edges' own
// (keys.EdgeSessions) until the returned func is called: a user's removal
// from the online set fails, its record's removal would not.
func (v *env) denyOnlineSREM(t *testing.T) (restore func()) {
	t.Helper()
	ctx := context.Background()
	edgeKeys := "~" + strings.TrimSuffix(keys.Space{}.EdgeSessions("*"), ":sessions") + ":*"
	if err := v.rdb.Do(ctx, "ACL", "SETUSER", "default", "-srem", "(+srem "+edgeKeys+")").Err(); err != nil {
		t.Fatal(err)
	}
	restore = func() {
		if err := v.rdb.Do(ctx, "ACL", "SETUSER", "default", "+srem", "clearselectors").Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restore)
	return restore
}

// drain shuts the edge down while its clients read their close frames.
func (v *env) drain(e *edge, cs ...*client) {
	v.t.Helper()
	done := make(chan struct{})
	go func() { e.stop(); close(done) }()
	for _, c := range cs {
		if got := c.closeCode(); got != wsedge.StatusRestart {
			v.t.Errorf("close code %d, want %d", got, wsedge.StatusRestart)
		}
	}
	<-done
}

// A drain that leaves nothing behind takes the edge out of the registry.
func TestDrainLeavesTheRegistry(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	e := v.startEdge("", func(c *wsedge.Config) { c.EdgeID = "drained" })
	c := v.connect(e, "u1", "d")
	eventually(t, "the edge's tenant listed", func() bool { return v.rdb.Exists(ctx, sp.EdgeTenants("drained")).Val() == 1 })
	v.drain(e, c)
	if err := v.rdb.ZScore(ctx, sp.Edges(), "drained").Err(); err != redis.Nil {
		t.Fatalf("the drained edge is still registered (%v)", err)
	}
	if n := v.rdb.Exists(ctx, sp.EdgeSessions("drained"), sp.EdgeTenants("drained")).Val(); n != 0 {
		t.Fatalf("%d of the drained edge's records left", n)
	}
	if got := v.onlineUsers(); len(got) != 0 {
		t.Fatalf("online users %v", got)
	}
}

// A drain whose presence removals fail (SREM refused) leaves the edge in
// the registry, its heartbeat stopped, so that a survivor cleans up after
// it: the user the drain could not take out goes, and so do the records.
func TestDrainWithRemovalsLeftStaysRegistered(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	e := v.startEdge("", func(c *wsedge.Config) { c.EdgeID = "drained" })
	c := v.connect(e, "u1", "d")
	restore := v.denySREM(t)
	v.drain(e, c)
	if err := v.rdb.ZScore(ctx, sp.Edges(), "drained").Err(); err != nil {
		t.Fatalf("the drained edge left the registry with presence records left (%v)", err)
	}
	if n := v.rdb.SCard(ctx, sp.EdgeSessions("drained")).Val(); n != 1 {
		t.Fatalf("the drained edge has %d presence records, want 1", n)
	}
	restore()
	v.startEdge("", func(c *wsedge.Config) { c.EdgeID = "survivor"; c.PresenceTTL = 300 * time.Millisecond })
	eventually(t, "the drained edge cleaned up after", func() bool {
		return len(v.onlineUsers()) == 0 &&
			v.rdb.ZScore(ctx, sp.Edges(), "drained").Err() == redis.Nil &&
			v.rdb.Exists(ctx, sp.EdgeSessions("drained"), sp.EdgeTenants("drained")).Val() == 0
	})
}

// The recovery after a crash fails to take the crashed session's user out
// of the online set: the record of the session stays, so the user goes
// once the failure passes.
func TestOnlineUsersRecoveryKeepsTheRecordOfAFailedRemoval(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	sp := keys.Space{}
	dir := t.TempDir()
	st, err := store.Open(dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	err = st.PutSession(store.Session{ID: "s1", Tenant: "acme", User: "u1", Device: "d", Edge: "crashed", ConnectedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	const member = "acme\x00u1\x00d\x00s1"
	v.rdb.ZAdd(ctx, sp.Edges(), redis.Z{Score: float64(time.Now().UnixMilli()), Member: "crashed"})
	v.rdb.SAdd(ctx, sp.EdgeSessions("crashed"), member)
	v.rdb.HSet(ctx, sp.Presence("acme", "u1"), "d", "crashed s1 1")
	v.rdb.SAdd(ctx, sp.OnlineUsers("acme"), "u1")

	restore := v.denyOnlineSREM(t)
	v.startEdge(dir, func(c *wsedge.Config) { c.EdgeID = "restarted"; c.PresenceTTL = 300 * time.Millisecond })
	if n := v.rdb.HLen(ctx, sp.Presence("acme", "u1")).Val(); n != 0 {
		t.Fatalf("u1 has %d presence entries after the recovery", n)
	}
	if !v.rdb.SIsMember(ctx, sp.EdgeSessions("crashed"), member).Val() {
		t.Fatalf("the record went while its user is still online (%v)", v.onlineUsers())
	}
	restore()
	eventually(t, "u1 out of the online set, the crashed edge cleaned up after", func() bool {
		return len(v.onlineUsers()) == 0 &&
			v.rdb.ZScore(ctx, sp.Edges(), "crashed").Err() == redis.Nil &&
			v.rdb.Exists(ctx, sp.EdgeSessions("crashed")).Val() == 0
	})
}

// nopermErrors is how many commands Redis refused for want of permission.
func nopermErrors(t *testing.T, v *env) int {
	t.Helper()
	var n int
	for _, line := range strings.Split(v.rdb.Info(context.Background(), "errorstats").Val(), "\n") {
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "errorstat_NOPERM:count=%d", &n); err == nil {
			return n
		}
	}
	return 0
}
