package feed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// randomRounds returns rounds of requests over a few feeds and two source
// streams, with redelivered and older source ids, entries without one,
// reused idempotency keys, and optional exp and device.
func randomRounds(seed uint64) [][]feed.Request {
	rng := rand.New(rand.NewPCG(seed, 1))
	feeds := []keys.Feed{keys.UserFeed("acme", "1"), keys.UserFeed("acme", "2"), keys.TenantFeed("acme"), keys.TopicFeed("acme", "x")}
	last := map[string]int{"s1": 0, "s2": 0}
	rounds := make([][]feed.Request, 3)
	n := 0
	for r := range rounds {
		for range 150 {
			n++
			src := []string{"s1", "s2"}[rng.IntN(2)]
			id := ""
			switch k := rng.IntN(10); {
			case k < 6:
				last[src]++
				id = strconv.Itoa(last[src]) + "-0"
			case k < 8: // redelivered or older
				id = strconv.Itoa(max(1, last[src]-rng.IntN(3))) + "-" + strconv.Itoa(rng.IntN(2))
			}
			q := feed.Request{
				Feed: feeds[rng.IntN(len(feeds))], SourceStream: src, SourceID: id,
				Type: "t" + strconv.Itoa(rng.IntN(3)), TS: int64(n), Data: []byte(fmt.Sprintf(`{"n":%d}`, n)),
			}
			if rng.IntN(5) == 0 {
				q.IdemKey = "k" + strconv.Itoa(rng.IntN(8))
			}
			if rng.IntN(4) == 0 {
				q.Exp = int64(n + 1000)
			}
			if rng.IntN(4) == 0 {
				q.Device = "d" + strconv.Itoa(rng.IntN(2))
			}
			rounds[r] = append(rounds[r], q)
		}
	}
	return rounds
}

// outcome is what a run left: every result and every feed's entries, with
// epochs replaced by the order in which each feed showed them.
type outcome struct {
	results []string
	entries map[string][]string
}

func runRounds(t *testing.T, cfg feed.AppendConfig, rounds [][]feed.Request) outcome {
	t.Helper()
	ctx := context.Background()
	rdb := redistest.Start(t).Client(t)
	a := feed.NewAppender(rdb, cfg)
	epochs := make(map[string]map[string]int) // feed -> epoch -> its number
	epochNo := func(f keys.Feed, e string) int {
		if e == "" {
			return -1
		}
		m := epochs[f.Tag()]
		if m == nil {
			m = make(map[string]int)
			epochs[f.Tag()] = m
		}
		if _, ok := m[e]; !ok {
			m[e] = len(m)
		}
		return m[e]
	}
	var out outcome
	for i, reqs := range rounds {
		if i > 0 { // between rounds, one feed loses its history
			if err := rdb.Del(ctx, keys.Space{}.FeedStream(reqs[0].Feed)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		res, err := a.Append(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		for j, r := range res {
			out.results = append(out.results, fmt.Sprintf("%v %d %d", r.Appended, r.Seq, epochNo(reqs[j].Feed, r.Epoch)))
		}
	}
	out.entries = make(map[string][]string)
	for _, f := range []keys.Feed{rounds[0][0].Feed, keys.UserFeed("acme", "1"), keys.UserFeed("acme", "2"), keys.TenantFeed("acme"), keys.TopicFeed("acme", "x")} {
		out.entries[f.Tag()] = feedDump(t, rdb, f, epochNo)
	}
	return out
}

func feedDump(t *testing.T, rdb redis.UniversalClient, f keys.Feed, epochNo func(keys.Feed, string) int) []string {
	t.Helper()
	ep, es, err := feed.NewReader(rdb, keys.Space{}).Range(context.Background(), f, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d %d %s %d %d %s %s", epochNo(f, ep), e.Seq, e.Type, e.TS, e.Exp, e.Device, e.Data))
	}
	return out
}

// Batched calls give exactly what one call per request gives.
func TestBatchesBehaveAsOneCallPerRequest(t *testing.T) {
	for seed := range uint64(3) {
		rounds := randomRounds(seed)
		want := runRounds(t, feed.AppendConfig{Grouping: feed.GroupNone}, rounds)
		for _, g := range groupings[:3] {
			t.Run(fmt.Sprintf("seed%d/%s", seed, g.name), func(t *testing.T) {
				got := runRounds(t, g.cfg, rounds)
				for i := range want.results {
					if got.results[i] != want.results[i] {
						t.Fatalf("request %d (%+v): %s, one call per request gave %s",
							i, rounds[i/150][i%150], got.results[i], want.results[i])
					}
				}
				if !reflect.DeepEqual(got.entries, want.entries) {
					t.Fatalf("feeds differ:\n%v\none call per request:\n%v", got.entries, want.entries)
				}
			})
		}
	}
}
