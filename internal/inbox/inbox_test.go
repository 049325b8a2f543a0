package inbox_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// fill appends n+m notifications to the user's feed and the tenant's,
// interleaved by ts, every 10th user one for the watch only, and returns
// how many are the watch's.
func fill(t *testing.T, rdb *redis.Client, n, m int) (watchOnly int) {
	t.Helper()
	a := feed.NewAppender(rdb, feed.AppendConfig{MaxLen: 10000})
	var reqs []feed.Request
	for i := 1; i <= n+m; i++ {
		f, dev := keys.UserFeed("acme", "u1"), ""
		if i%((n+m)/max(m, 1)+1) == 0 && m > 0 {
			f = keys.TenantFeed("acme")
		} else if i%10 == 0 {
			dev = "watch"
			watchOnly++
		}
		reqs = append(reqs, feed.Request{Feed: f, SourceStream: "s", SourceID: fmt.Sprintf("%d-0", i),
			Type: "t.x", TS: int64(1000 + i), Device: dev, Data: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	if _, err := a.Append(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	return watchOnly
}

var phone = inbox.User{Tenant: "acme", User: "u1", Device: "phone"}

func all(t *testing.T, ib *inbox.Inbox, u inbox.User, q inbox.Query) []inbox.Item {
	t.Helper()
	var out []inbox.Item
	for range 1000 {
		p, err := ib.List(context.Background(), u, q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.Next == nil {
			return out
		}
		q.Before = *p.Next
	}
	t.Fatal("no end")
	return nil
}

func TestListPagesEverythingOnce(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	watchOnly := fill(t, rdb, 180, 40)
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	for _, limit := range []int{1, 7, 50, 200} {
		items := all(t, ib, phone, inbox.Query{Limit: limit})
		seen := map[string]bool{}
		for i, it := range items {
			if seen[it.ID] {
				t.Fatalf("limit %d: %s twice", limit, it.ID)
			}
			seen[it.ID] = true
			if i > 0 && it.TS > items[i-1].TS {
				t.Fatalf("limit %d: not newest first at %d", limit, i)
			}
		}
		if want := 220 - watchOnly; watchOnly == 0 || len(items) != want {
			t.Fatalf("limit %d: %d items, want %d", limit, len(items), want)
		}
	}
}

func TestMarkReadFoldsIntoTheWatermark(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	fill(t, rdb, 30, 0)
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	items := all(t, ib, phone, inbox.Query{Limit: 200})
	ids := func(seqs ...uint64) []string {
		var out []string
		for _, it := range items {
			if slices.Contains(seqs, it.Seq) {
				out = append(out, it.ID)
			}
		}
		return out
	}
	// 3, then 1 and 2: the watermark moves to 3 and the set empties.
	if n, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: ids(3)}); err != nil || n != 26 {
		t.Fatalf("after 3: %d %v", n, err)
	}
	if n, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: ids(1, 2, 5)}); err != nil || n != 23 {
		t.Fatalf("after 1, 2, 5: %d %v", n, err)
	}
	st, err := rdb.HGetAll(ctx, keys.Space{}.ReadState("acme", "u1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if w := st["w:user"]; w != items[0].ID[:len(items[0].ID)-len("-30-user")]+":3" || st["s:user"] != "5" {
		t.Fatalf("read state %v", st)
	}
	// 4 joins the run: watermark 5, no set.
	if _, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: ids(4)}); err != nil {
		t.Fatal(err)
	}
	st, _ = rdb.HGetAll(ctx, keys.Space{}.ReadState("acme", "u1")).Result()
	if _, ok := st["s:user"]; ok || st["w:user"][len(st["w:user"])-2:] != ":5" {
		t.Fatalf("read state after 4: %v", st)
	}
	// The watch sees its own: 30 - 5 read.
	watch := phone
	watch.Device = "watch"
	if n, err := ib.Unread(ctx, watch); err != nil || n != 25 {
		t.Fatalf("watch unread: %d %v", n, err)
	}
	if n, err := ib.MarkRead(ctx, phone, inbox.Mark{All: true}); err != nil || n != 0 {
		t.Fatalf("all: %d %v", n, err)
	}
	if n, _ := ib.Unread(ctx, watch); n != 0 {
		t.Fatalf("watch after all: %d", n)
	}
}

func TestExpiredAreLeftOut(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	now := time.Now().UnixMilli()
	f := keys.UserFeed("acme", "u1")
	reqs := []feed.Request{
		{Feed: f, SourceStream: "s", SourceID: "1-0", Type: "t.x", TS: now, Exp: now - 1, Data: []byte(`{}`)},
		{Feed: f, SourceStream: "s", SourceID: "2-0", Type: "t.x", TS: now, Data: []byte(`{}`)},
	}
	if _, err := a.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	p, err := ib.List(ctx, phone, inbox.Query{})
	if err != nil || len(p.Items) != 1 || p.Items[0].Seq != 2 || p.Unread != 1 || p.Next != nil {
		t.Fatalf("page %+v %v", p, err)
	}
}

func TestBadInput(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	ctx := context.Background()
	for _, tc := range []struct {
		field string
		err   error
	}{
		{"limit", func() error { _, err := ib.List(ctx, phone, inbox.Query{Limit: 201}); return err }()},
		{"before", func() error { _, err := ib.List(ctx, phone, inbox.Query{Before: "!!"}); return err }()},
		{"ids", func() error { _, err := ib.MarkRead(ctx, phone, inbox.Mark{}); return err }()},
		{"ids", func() error { _, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: []string{"nope"}}); return err }()},
		{"up_to", func() error { _, err := ib.MarkRead(ctx, phone, inbox.Mark{UpTo: "e-1-topic:x"}); return err }()},
	} {
		ve, ok := tc.err.(*inbox.ValidationError)
		if !ok || ve.Field != tc.field {
			t.Errorf("%s: %v", tc.field, tc.err)
		}
	}
}

func FuzzCursor(f *testing.F) {
	f.Add("")
	f.Add("ZXA6MTI7ZXA6LQ")
	f.Add("!!")
	rdb := redistest.Start(f).Client(f)
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	f.Fuzz(func(t *testing.T, cursor string) {
		_, err := ib.List(context.Background(), phone, inbox.Query{Before: cursor})
		if _, ok := err.(*inbox.ValidationError); err != nil && !ok {
			t.Fatalf("cursor %q: %v", cursor, err)
		}
	})
}

// TestUnreadCountsWithoutReading covers the counted part of a feed (after
// the last entry with a device or exp) and a trimmed feed.
func TestUnreadCountsWithoutReading(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{MaxLen: 10000})
	f := keys.UserFeed("acme", "u1")
	var reqs []feed.Request
	for i := 1; i <= 25; i++ {
		r := feed.Request{Feed: f, SourceStream: "s", SourceID: fmt.Sprintf("%d-0", i), Type: "t.x", TS: int64(i), Data: []byte(`{}`)}
		if i <= 5 {
			r.Device = "watch"
		}
		reqs = append(reqs, r)
	}
	if _, err := a.Append(ctx, reqs); err != nil {
		t.Fatal(err)
	}
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	items := all(t, ib, phone, inbox.Query{Limit: 200})
	var ids []string
	for _, it := range items {
		if it.Seq == 10 || it.Seq == 12 {
			ids = append(ids, it.ID)
		}
	}
	if n, err := ib.MarkRead(ctx, phone, inbox.Mark{IDs: ids}); err != nil || n != 18 {
		t.Fatalf("phone after 10 and 12: %d %v", n, err)
	}
	watch := phone
	watch.Device = "watch"
	if n, err := ib.Unread(ctx, watch); err != nil || n != 23 {
		t.Fatalf("watch: %d %v", n, err)
	}
	// Trim the stream to its last 8 entries (18..25): 12 and older are gone.
	if err := rdb.XTrimMaxLen(ctx, keys.Space{}.FeedStream(f), 8).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := ib.Unread(ctx, phone); err != nil || n != 8 {
		t.Fatalf("phone after the trim: %d %v", n, err)
	}
}

// TestNewArrivalsStayOffOlderPages: a feed the first page read but took
// nothing from keeps its snapshot, and an id or up_to past a feed's newest
// seq marks nothing in advance.
func TestNewArrivalsStayOffOlderPages(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	add := func(f keys.Feed, src string, ts int64) {
		if _, err := a.Append(ctx, []feed.Request{{Feed: f, SourceStream: "s", SourceID: src, Type: "t.x", TS: ts, Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	add(keys.TenantFeed("acme"), "1-0", 100) // old tenant news
	for i := 2; i <= 6; i++ {
		add(keys.UserFeed("acme", "u1"), fmt.Sprintf("%d-0", i), int64(1000+i))
	}
	ib := inbox.New(rdb, keys.Space{}, inbox.Config{})
	p1, err := ib.List(ctx, phone, inbox.Query{Limit: 2})
	if err != nil || p1.Next == nil {
		t.Fatalf("page 1: %+v %v", p1, err)
	}
	add(keys.TenantFeed("acme"), "7-0", 5000) // newer than everything on page 1
	rest := all(t, ib, phone, inbox.Query{Limit: 2, Before: *p1.Next})
	for _, it := range rest {
		if it.TS == 5000 {
			t.Fatal("a notification newer than page 1 showed on a later page")
		}
	}
	if len(rest) != 4 {
		t.Fatalf("later pages: %d items, want 4", len(rest))
	}
	epoch := p1.Items[0].ID[:strings.Index(p1.Items[0].ID, "-")]
	if n, err := ib.MarkRead(ctx, phone, inbox.Mark{UpTo: epoch + "-999-user"}); err != nil || n != 2 {
		t.Fatalf("up_to past the newest: %d unread, %v (want the 5 user ones read, 2 tenant unread)", n, err)
	}
	add(keys.UserFeed("acme", "u1"), "8-0", 6000)
	if n, _ := ib.Unread(ctx, phone); n != 3 {
		t.Fatalf("a notification after up_to: %d unread, want 3", n)
	}
}
