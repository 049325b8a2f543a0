package feed_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// BenchmarkAppendSingleVsCluster appends to 10,000 user feeds (with an
// idempotency key each, as a dispatcher does) from 8 goroutines, as 8
// dispatcher partitions would, on one Redis and on a three-master cluster,
// in one run: notifications/s is the figure to compare. Each goroutine
// sends its own feeds' batches of 64 requests; on the cluster a batch is
// split by slot into one script call per feed, one round trip per master.
//
//	go test -run '^$' -bench AppendSingleVsCluster -benchtime 200x ./internal/feed/
func BenchmarkAppendSingleVsCluster(b *testing.B) {
	for _, c := range []struct {
		name  string
		start func(b *testing.B) redis.UniversalClient
	}{
		{"single", func(b *testing.B) redis.UniversalClient { return redistest.Start(b).Client(b) }},
		{"cluster3", func(b *testing.B) redis.UniversalClient { return redistest.StartCluster(b, 3).Client(b) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			rdb := c.start(b)
			a := feed.NewAppender(rdb, feed.AppendConfig{})
			ctx := context.Background()
			if err := a.Load(ctx); err != nil {
				b.Fatal(err)
			}
			const workers, users, batch = 8, 10000, 64
			var next sync.Mutex
			n := 0
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					reqs := make([]feed.Request, batch)
					for {
						next.Lock()
						if n >= b.N {
							next.Unlock()
							return
						}
						k := n
						n++
						next.Unlock()
						for i := range reqs {
							u := (w*users/workers + (k*batch+i)%(users/workers))
							reqs[i] = feed.Request{
								Feed:         keys.UserFeed("acme", "user-"+strconv.Itoa(u)),
								SourceStream: "herald:events:{" + strconv.Itoa(w) + "}",
								IdemKey:      fmt.Sprintf("k-%d-%d-%d", w, k, i),
								Type:         "bench.load",
								TS:           time.Now().UnixMilli(),
								Data:         []byte(`{"order":"o-1","total":42}`),
							}
						}
						if _, err := a.Append(ctx, reqs); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "notifications/s")
		})
	}
}
