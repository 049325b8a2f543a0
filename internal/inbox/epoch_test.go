package inbox_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// epochFeed is one inbox feed under its own key prefix, for the tests of
// feeds that change epoch.
type epochFeed struct {
	rdb   *redis.Client
	space keys.Space
	name  string // inbox.FeedUser or inbox.FeedTenant
	f     keys.Feed
	n     int // source ids given so far
}

func newEpochFeed(rdb *redis.Client, prefix, name string) *epochFeed {
	f := keys.UserFeed("acme", "u1")
	if name == inbox.FeedTenant {
		f = keys.TenantFeed("acme")
	}
	return &epochFeed{rdb: rdb, space: keys.Space{Prefix: prefix}, name: name, f: f}
}

// add appends n notifications and returns their ids, oldest first.
func (ef *epochFeed) add(t *testing.T, n int) []string {
	t.Helper()
	a := feed.NewAppender(ef.rdb, feed.AppendConfig{Space: ef.space})
	var reqs []feed.Request
	for range n {
		ef.n++
		reqs = append(reqs, feed.Request{Feed: ef.f, SourceStream: "s", SourceID: fmt.Sprintf("%d-0", ef.n),
			Type: "t.x", TS: int64(1000 + ef.n), Data: []byte(`{}`)})
	}
	res, err := a.Append(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = feed.NotificationID(r.Epoch, r.Seq, ef.name)
	}
	return ids
}

// reset loses the feed's history (its stream is gone, its meta kept): the
// next append starts a new epoch at seq 1. It returns n new ids.
func (ef *epochFeed) reset(t *testing.T, n int) []string {
	t.Helper()
	if err := ef.rdb.Del(context.Background(), ef.space.FeedStream(ef.f)).Err(); err != nil {
		t.Fatal(err)
	}
	ids := ef.add(t, n)
	if epochOf(ids[0]) == "" || ids[0] != feed.NotificationID(epochOf(ids[0]), 1, ef.name) {
		t.Fatalf("after the reset: %s, want seq 1 of a new epoch", ids[0])
	}
	return ids
}

// state is the user's read-state hash.
func (ef *epochFeed) state(t *testing.T) map[string]string {
	t.Helper()
	m, err := ef.rdb.HGetAll(context.Background(), ef.space.ReadState("acme", "u1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func epochOf(id string) string {
	epoch, _, _, _ := feed.ParseNotificationID(id)
	return epoch
}

// afterHead runs fn once, right after the client it hooks first reads
// the head of the feed whose meta key is meta: between a mark's plan and
// its write.
type afterHead struct {
	meta string
	once sync.Once
	fn   func()
}

func (h *afterHead) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *afterHead) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *afterHead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if a := c.Args(); c.Name() == "hmget" && len(a) > 1 && a[1] == h.meta {
				h.once.Do(h.fn)
			}
		}
		return err
	}
}

var laptop = inbox.User{Tenant: "acme", User: "u1", Device: "laptop"}

// TestStaleMarkKeepsTheNewEpochsState: the phone marks read in a feed's
// epoch E1; before its write lands the feed loses its history (epoch E2)
// and the laptop marks E2's first two read. The phone's mark, of an epoch
// that is gone, is ignored: E2's read state stays.
func TestStaleMarkKeepsTheNewEpochsState(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	for _, name := range []string{inbox.FeedUser, inbox.FeedTenant} {
		for _, kind := range []string{"ids", "up_to", "all"} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				ef := newEpochFeed(rdb, "stale-"+name+"-"+kind+":", name)
				old := ef.add(t, 3)
				var fresh []string
				slow := srv.Client(t)
				slow.AddHook(&afterHead{meta: ef.space.FeedMeta(ef.f), fn: func() {
					fresh = ef.reset(t, 3)
					ib := inbox.New(rdb, ef.space, inbox.Config{})
					if n, err := ib.MarkRead(ctx, laptop, inbox.Mark{IDs: fresh[:2]}); err != nil || n != 1 {
						t.Errorf("laptop marks %v: %d unread, %v", fresh[:2], n, err)
					}
				}})
				m := map[string]inbox.Mark{"ids": {IDs: old[2:]}, "up_to": {UpTo: old[2]}, "all": {All: true}}[kind]
				n, err := inbox.New(slow, ef.space, inbox.Config{}).MarkRead(ctx, phone, m)
				if fresh == nil {
					t.Fatal("the feed was not reset during the mark")
				}
				if err != nil || n != 1 {
					t.Errorf("phone's stale mark: %d unread, %v; want 1 (the new epoch's seq 3)", n, err)
				}
				st := ef.state(t)
				if want := epochOf(fresh[0]) + ":2"; st["w:"+name] != want {
					t.Errorf("read state %v: want w:%s = %s", st, name, want)
				}
				if n, err := inbox.New(rdb, ef.space, inbox.Config{}).Unread(ctx, laptop); err != nil || n != 1 {
					t.Errorf("laptop afterwards: %d unread, %v; want 1", n, err)
				}
			})
		}
	}
}

// TestOfflineMarkOfAnOldEpochIsIgnored: a device offline while the feed
// changed epoch sends ids and up_to of the old epoch: nothing changes.
func TestOfflineMarkOfAnOldEpochIsIgnored(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	for _, name := range []string{inbox.FeedUser, inbox.FeedTenant} {
		ef := newEpochFeed(rdb, "offline-"+name+":", name)
		old := ef.add(t, 3)
		fresh := ef.reset(t, 3)
		ib := inbox.New(rdb, ef.space, inbox.Config{})
		if _, err := ib.MarkRead(ctx, laptop, inbox.Mark{IDs: fresh[:2]}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []inbox.Mark{{IDs: old}, {UpTo: old[2]}} {
			if n, err := ib.MarkRead(ctx, phone, m); err != nil || n != 1 {
				t.Errorf("%s: old mark %+v: %d unread, %v; want 1", name, m, n, err)
			}
		}
		if st := ef.state(t); st["w:"+name] != epochOf(fresh[0])+":2" {
			t.Errorf("%s: read state %v", name, st)
		}
	}
}

// TestOldEpochStateCountsForNothing: read state of an epoch that is gone
// (watermark and set) makes nothing of the new epoch read, and the first
// mark in the new epoch replaces it.
func TestOldEpochStateCountsForNothing(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	for _, name := range []string{inbox.FeedUser, inbox.FeedTenant} {
		ef := newEpochFeed(rdb, "old-"+name+":", name)
		old := ef.add(t, 4)
		ib := inbox.New(rdb, ef.space, inbox.Config{})
		if n, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: []string{old[0], old[2]}}); err != nil || n != 2 {
			t.Fatalf("%s: in the old epoch: %d unread, %v", name, n, err)
		}
		fresh := ef.reset(t, 4)
		if n, err := ib.Unread(ctx, phone); err != nil || n != 4 {
			t.Errorf("%s: after the reset: %d unread, %v; want 4", name, n, err)
		}
		for _, unread := range []bool{false, true} {
			items := all(t, ib, phone, inbox.Query{Unread: unread})
			if len(items) != 4 {
				t.Errorf("%s: unread=%v lists %d, want 4", name, unread, len(items))
			}
			for _, it := range items {
				if it.Read {
					t.Errorf("%s: %s is read", name, it.ID)
				}
			}
		}
		if n, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: fresh[:1]}); err != nil || n != 3 {
			t.Errorf("%s: first mark in the new epoch: %d unread, %v; want 3", name, n, err)
		}
		st := ef.state(t)
		if _, ok := st["s:"+name]; ok || st["w:"+name] != epochOf(fresh[0])+":1" {
			t.Errorf("%s: read state %v, want only w:%s = %s:1", name, st, name, epochOf(fresh[0]))
		}
	}
}
