package feed_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// groupings are the ways of sending requests that must all behave the same.
var groupings = []struct {
	name string
	cfg  feed.AppendConfig
}{
	{"any-feeds", feed.AppendConfig{}},
	{"any-feeds-small-calls", feed.AppendConfig{Grouping: feed.GroupAny, BatchSize: 7}},
	{"per-feed", feed.AppendConfig{Grouping: feed.GroupFeed, BatchSize: 5}},
	{"one-per-call", feed.AppendConfig{Grouping: feed.GroupNone}},
}

// interleave returns requests for feeds, counts[i] of them for feeds[i],
// taken in turns while each feed has some left, with increasing source ids.
func interleave(feeds []keys.Feed, counts []int) []feed.Request {
	var reqs []feed.Request
	left := append([]int(nil), counts...)
	for more := true; more; {
		more = false
		for i, f := range feeds {
			if left[i] > 0 {
				left[i]--
				reqs = append(reqs, req(f, fmt.Sprintf("%d-0", len(reqs)+1), len(reqs)))
				more = true
			}
		}
	}
	return reqs
}

// sixFeeds are feeds with uneven shares of 200 requests.
var sixFeeds = []keys.Feed{
	keys.UserFeed("acme", "1"), keys.UserFeed("acme", "2"), keys.TenantFeed("acme"),
	keys.TopicFeed("acme", "news"), keys.UserFeed("acme", "3"), keys.UserFeed("globex", "1"),
}

var sixCounts = []int{30, 30, 30, 5, 5, 100}

// commandCalls returns how many times Redis ran each of commands since the
// last CONFIG RESETSTAT, those that scripts ran included.
func commandCalls(t *testing.T, rdb redis.UniversalClient, commands ...string) []int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int, len(commands))
	for line := range strings.SplitSeq(info, "\r\n") {
		for i, c := range commands {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+c+":calls="); ok {
				out[i], _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			}
		}
	}
	return out
}

func TestBatchKeepsEachFeedInOrder(t *testing.T) {
	feeds, reqs := sixFeeds, interleave(sixFeeds, sixCounts)
	// 64 a call: 30+30, then 30+5+5, then the feed of 100 alone. Fewer a
	// call: one call per feed, each feed whole. Batched, each feed's meta
	// is read once; each new feed's two keys get their TTL once.
	wantCalls := map[string][]int{
		"any-feeds":             {3, 6, 12, 200},
		"any-feeds-small-calls": {6, 6, 12, 200},
		"per-feed":              {6, 6, 12, 200},
		"one-per-call":          {200, 200, 12, 200},
	}
	for _, g := range groupings {
		t.Run(g.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client(t)
			a := feed.NewAppender(rdb, g.cfg)
			if err := a.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := a.Append(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			got := commandCalls(t, rdb, "evalsha", "hmget", "expire", "publish")
			if !slices.Equal(got, wantCalls[g.name]) {
				t.Errorf("evalsha, hmget, expire, publish calls: %v, want %v", got, wantCalls[g.name])
			}
			next := make(map[keys.Feed]uint64)
			epochs := make(map[keys.Feed]string)
			for i, r := range res {
				f := reqs[i].Feed
				next[f]++
				if epochs[f] == "" {
					epochs[f] = r.Epoch
				}
				if !r.Appended || r.Seq != next[f] || r.Epoch != epochs[f] {
					t.Fatalf("request %d to %s: %+v, want seq %d in epoch %s", i, f.Tag(), r, next[f], epochs[f])
				}
			}
			for _, f := range feeds {
				checkFeed(t, rdb, f, epochs[f], reqs)
			}
		})
	}
}

// checkFeed checks that f holds exactly the requests of reqs for f, in
// order, with seqs from 1.
func checkFeed(t *testing.T, rdb redis.UniversalClient, f keys.Feed, epoch string, reqs []feed.Request) {
	t.Helper()
	ep, got, err := feed.NewReader(rdb, keys.Space{}).Range(context.Background(), f, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range reqs {
		if r.Feed == f {
			want = append(want, string(r.Data))
		}
	}
	if ep != epoch || len(got) != len(want) {
		t.Fatalf("feed %s: epoch %s with %d entries, want %s with %d", f.Tag(), ep, len(got), epoch, len(want))
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || string(e.Data) != want[i] {
			t.Fatalf("feed %s entry %d: seq %d data %s, want seq %d data %s", f.Tag(), i, e.Seq, e.Data, i+1, want[i])
		}
	}
}

func TestDuplicatesInsideOneCall(t *testing.T) {
	f, g := keys.UserFeed("acme", "1"), keys.UserFeed("acme", "2")
	withIdem := func(r feed.Request, k string) feed.Request { r.IdemKey = k; return r }
	cases := []struct {
		r        feed.Request
		appended bool
		seq      uint64
	}{
		{withIdem(req(f, "1-0", 0), "k1"), true, 1},
		{withIdem(req(f, "2-0", 1), "k1"), false, 1}, // same key: the original's seq; 2-0 is not recorded
		{req(f, "2-0", 2), true, 2},
		{req(f, "2-0", 3), false, 0},  // same source id
		{req(f, "1-5", 4), false, 0},  // older source id
		{req(f, "", 5), true, 3},      // no source id: no source dedup
		{req(g, "10-0", 6), true, 1},  // another feed, its own source position
		{req(g, "2-10", 7), false, 0}, // older than g's 10-0
		{withIdem(req(f, "3-0", 8), "k1"), false, 1},
		{withIdem(req(f, "3-0", 9), "k2"), true, 4},
		{req(f, "10-0", 10), true, 5}, // a longer <ms> is newer
		{req(f, "10-9", 11), true, 6}, // same <ms>, longer <n>
		{req(f, "10-10", 12), true, 7},
		{req(f, "10-9", 13), false, 0},
	}
	reqs := make([]feed.Request, len(cases))
	for i, c := range cases {
		reqs[i] = c.r
	}
	for _, gr := range groupings {
		t.Run(gr.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client(t)
			res, err := feed.NewAppender(rdb, gr.cfg).Append(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range cases {
				if res[i].Appended != c.appended || res[i].Seq != c.seq || res[i].Epoch == "" {
					t.Errorf("request %d (source %q, idem %q): %+v, want appended=%v seq %d",
						i, c.r.SourceID, c.r.IdemKey, res[i], c.appended, c.seq)
				}
			}
			if n := rdb.XLen(ctx, keys.Space{}.FeedStream(f)).Val(); n != 7 {
				t.Errorf("feed has %d entries, want 7", n)
			}
		})
	}
}

func TestHistoryLossInsideABatch(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	sp := keys.Space{}
	a := feed.NewAppender(rdb, feed.AppendConfig{})
	f, other := keys.UserFeed("acme", "1"), keys.UserFeed("acme", "2")
	batch := func(from int) []feed.Request {
		return []feed.Request{
			req(f, fmt.Sprintf("%d-0", from), from), req(other, fmt.Sprintf("%d-0", from+1), from+1),
			req(f, fmt.Sprintf("%d-0", from+2), from+2), req(f, fmt.Sprintf("%d-0", from+3), from+3),
		}
	}
	first, err := a.Append(ctx, batch(10))
	if err != nil {
		t.Fatal(err)
	}

	// The stream is gone, the meta is not: a new epoch from seq 1.
	if err := rdb.Del(ctx, sp.FeedStream(f)).Err(); err != nil {
		t.Fatal(err)
	}
	second, err := a.Append(ctx, batch(20))
	if err != nil {
		t.Fatal(err)
	}
	ep := second[0].Epoch
	if ep == first[0].Epoch || second[0].Seq != 1 || second[2].Seq != 2 || second[3].Seq != 3 ||
		second[2].Epoch != ep || second[3].Epoch != ep {
		t.Fatalf("after the stream was lost: %+v then %+v", first, second)
	}
	if second[1].Epoch != first[1].Epoch || second[1].Seq != 2 {
		t.Fatalf("the other feed changed: %+v then %+v", first[1], second[1])
	}
	checkFeed(t, rdb, f, ep, batch(20))

	// The meta is gone, the stream is not: the old entries go too.
	if err := rdb.Del(ctx, sp.FeedMeta(f)).Err(); err != nil {
		t.Fatal(err)
	}
	third, err := a.Append(ctx, batch(30))
	if err != nil {
		t.Fatal(err)
	}
	if third[0].Epoch == ep || third[0].Seq != 1 || third[3].Seq != 3 {
		t.Fatalf("after the meta was lost: %+v", third)
	}
	checkFeed(t, rdb, f, third[0].Epoch, batch(30))
}

func TestBatchSurvivesScriptFlush(t *testing.T) {
	reqs := interleave(sixFeeds, sixCounts)
	for _, g := range groupings {
		t.Run(g.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client(t)
			a := feed.NewAppender(rdb, g.cfg)
			first, err := a.Append(ctx, reqs[:100])
			if err != nil {
				t.Fatal(err)
			}
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			second, err := a.Append(ctx, reqs[100:])
			if err != nil {
				t.Fatal(err)
			}
			epochs := make(map[keys.Feed]string)
			for i, r := range append(first, second...) {
				if !r.Appended {
					t.Fatalf("request %d (SCRIPT FLUSH after 100): %+v", i, r)
				}
				epochs[reqs[i].Feed] = r.Epoch
			}
			for _, f := range sixFeeds {
				checkFeed(t, rdb, f, epochs[f], reqs)
			}
		})
	}
}

// A call stops at a request that fails. Running the same requests again
// once the cause is gone loses nothing, in any grouping: a feed's requests
// never sit in two calls of which only the later one ran.
func TestFailedCallLosesNothingOnRetry(t *testing.T) {
	a1, p, b := keys.UserFeed("acme", "a"), keys.UserFeed("acme", "poison"), keys.UserFeed("acme", "b")
	for _, g := range append(groupings, struct {
		name string
		cfg  feed.AppendConfig
	}{"two-a-call", feed.AppendConfig{BatchSize: 2}}) {
		t.Run(g.name, func(t *testing.T) {
			ctx := context.Background()
			rdb := redistest.Start(t).Client(t)
			meta := keys.Space{}.FeedMeta(p)
			if err := rdb.Set(ctx, meta, "not a hash", 0).Err(); err != nil {
				t.Fatal(err)
			}
			reqs := interleave([]keys.Feed{p, a1, b}, []int{1, 3, 3})
			app := feed.NewAppender(rdb, g.cfg)
			if _, err := app.Append(ctx, reqs); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				t.Fatalf("append with a poisoned feed: %v, want WRONGTYPE", err)
			}
			if err := rdb.Del(ctx, meta).Err(); err != nil {
				t.Fatal(err)
			}
			res, err := app.Append(ctx, reqs)
			if err != nil {
				t.Fatal(err)
			}
			epochs := make(map[keys.Feed]string)
			for i, r := range res {
				epochs[reqs[i].Feed] = r.Epoch
			}
			for _, f := range []keys.Feed{a1, p, b} {
				checkFeed(t, rdb, f, epochs[f], reqs)
			}
		})
	}
}
