package feed_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// startCluster starts a one-node Redis Cluster holding every slot: enough
// for Redis to refuse a script whose keys are in different slots.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	ctx := context.Background()
	srv := redistest.Start(t, redistest.WithArgs("--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1"))
	node := srv.Client(t)
	if err := node.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(node.ClusterInfo(ctx).Val(), "cluster_state:ok") {
		if time.Now().After(deadline) {
			t.Fatal("cluster_state is not ok after 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling the cluster state
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.Addr()}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestClusterAppendsEachFeedInItsOwnCalls(t *testing.T) {
	ctx := context.Background()
	rdb := startCluster(t)
	feeds, reqs := sixFeeds, interleave(sixFeeds, sixCounts)

	// Requests of different feeds in one call: Redis refuses them.
	_, err := feed.NewAppender(rdb, feed.AppendConfig{Grouping: feed.GroupAny}).Append(ctx, reqs[:10])
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("requests of many feeds in one call on a cluster: %v, want CROSSSLOT", err)
	}

	// The default on a ClusterClient keeps each call to one feed.
	a := feed.NewAppender(rdb, feed.AppendConfig{BatchSize: 16})
	res, err := a.Append(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	epochs := make(map[keys.Feed]string)
	for i, r := range res {
		if !r.Appended {
			t.Fatalf("request %d: %+v", i, r)
		}
		epochs[reqs[i].Feed] = r.Epoch
	}
	for _, f := range feeds {
		checkFeed(t, rdb, f, epochs[f], reqs)
	}
}
