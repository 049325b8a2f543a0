package feed_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/internal/replicas"
	"github.com/redis/go-redis/v9"
)

// TestAppendLargestPipelineWaitsForReplica: the largest append a
// dispatcher sends in one pipeline (1000 requests, 8 MiB: dispatcher's
// maxAppendRequests and maxAppendBytes), as 1000 script calls (one per
// feed, as on a cluster) or a few large ones, then WAIT, with a replica
// timeout longer than the client's ReadTimeout: the whole pipeline is read
// in time, and the replica has every entry when Append returns. The time
// it took is logged: it is what the ReadTimeout must cover (see
// docs/scaling.md).
func TestAppendLargestPipelineWaitsForReplica(t *testing.T) {
	const n, total = 1000, 8 << 20
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	rdb := redis.NewClient(&redis.Options{Addr: master.Addr(), ReadTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), total/n)
	for _, g := range []struct {
		name     string
		grouping feed.Grouping
	}{{"per-feed", feed.GroupFeed}, {"any-feeds", feed.GroupAny}} {
		t.Run(g.name, func(t *testing.T) {
			a := feed.NewAppender(rdb, feed.AppendConfig{Grouping: g.grouping,
				Replicas: replicas.Policy{Replicas: 1, Timeout: 2 * time.Second}})
			reqs := make([]feed.Request, n)
			for i := range reqs {
				reqs[i] = feed.Request{Feed: keys.UserFeed(g.name, fmt.Sprint(i)), SourceStream: "herald:events",
					SourceID: fmt.Sprintf("%d-0", i+1), Type: "t", TS: 1, Data: data}
			}
			start := time.Now()
			res, err := a.Append(ctx, reqs)
			t.Logf("%d requests, %d MiB: %v", n, total>>20, time.Since(start))
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if !r.Appended {
					t.Fatalf("request %d not appended", i)
				}
			}
			on := replica.Client(t)
			for i := range n {
				if l, err := on.XLen(ctx, keys.Space{}.FeedStream(reqs[i].Feed)).Result(); l != 1 || err != nil {
					t.Fatalf("feed %d on the replica: %d entries, %v; want 1", i, l, err)
				}
			}
		})
	}
}
