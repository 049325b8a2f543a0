package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestSteadyTrafficOnRedisCluster is the baseline scenario on a real
// three-master Redis Cluster: ingest partitions spread over the masters,
// feeds in every slot, sharded Pub/Sub (one connection per master on every
// edge), every script in its own slot.
func TestSteadyTrafficOnRedisCluster(t *testing.T) {
	scenario{name: "steady-redis-cluster", cluster: clusterConfig{redisCluster: true}, undisturbed: true,
		verify: func(r *run, res *result) { checkSharded(r) }}.run(t)
}

var callsRE = regexp.MustCompile(`cmdstat_(s?publish):calls=(\d+)`)

// checkSharded checks that every master carried its share of the
// notifications with SPUBLISH and none with PUBLISH (which a cluster copies
// to every node).
func checkSharded(r *run) {
	r.t.Helper()
	for i, n := range r.c.rc.Nodes[:r.c.rc.Masters] {
		info, err := n.Client(r.t).Info(context.Background(), "commandstats").Result()
		if err != nil {
			r.t.Fatalf("master %d: %v", i, err)
		}
		calls := map[string]int{}
		for _, m := range callsRE.FindAllStringSubmatch(info, -1) {
			calls[m[1]], _ = strconv.Atoi(m[2])
		}
		r.t.Logf("master %d: %d SPUBLISH, %d PUBLISH", i, calls["spublish"], calls["publish"])
		if calls["spublish"] == 0 || calls["publish"] != 0 {
			r.t.Errorf("master %d: %d SPUBLISH and %d PUBLISH, want some and none", i, calls["spublish"], calls["publish"])
		}
	}
}

// TestRedisClusterMasterKilled kills, with SIGKILL during traffic, the
// master that holds the ingest partition in use (and a third of the
// feeds); its replica is promoted, and the killed node comes back as a
// replica. Every event the publisher was told was stored is delivered:
// 0 lost; duplicates, if any, are counted.
func TestRedisClusterMasterKilled(t *testing.T) {
	scenario{name: "redis-cluster-failover", cluster: clusterConfig{redisCluster: true, replicas: 1},
		fault: func(r *run) {
			ctx := context.Background()
			r.at(4 * time.Second)
			victim := -1
			for _, s := range r.c.space.IngestStreams(clusterPartitions) {
				if r.c.rdb.XLen(ctx, s).Val() == 0 {
					continue
				}
				m, err := r.c.rdb.(*redis.ClusterClient).MasterForKey(ctx, s)
				if err != nil {
					r.t.Fatal(err)
				}
				for i, n := range r.c.rc.Nodes[:r.c.rc.Masters] {
					if n.Addr() == m.Options().Addr {
						victim = i
					}
				}
			}
			if victim < 0 {
				r.t.Fatal("no master holds an ingest partition with entries")
			}
			node := r.c.rc.Nodes[victim]
			if err := node.Kill(); err != nil {
				r.t.Fatal(err)
			}
			killed := time.Now()
			replica := r.c.rc.Nodes[r.c.rc.Masters+victim]
			at, ok := waitUntil(20*time.Second, func() bool {
				info, err := replica.Client(r.t).Info(ctx, "replication").Result()
				return err == nil && strings.Contains(info, "role:master")
			})
			if !ok {
				r.t.Fatalf("the replica of master %d was not promoted within 20s", victim)
			}
			r.t.Logf("SIGKILL to master %d (%s); its replica promoted %v later", victim, node.Addr(), at.Sub(killed).Round(time.Millisecond))
			r.at(10 * time.Second)
			if err := node.Restart(ctx); err != nil {
				r.t.Fatal(err)
			}
		}}.run(t)
}

// TestFaultsOnRedisCluster runs the edge fault and bad-input scenarios on
// a three-master cluster: each edge's sharded subscriptions follow its
// sessions from edge to edge as they do on one Redis. (The scenarios that
// kill, restart or freeze the one Redis have their cluster counterparts
// above and in internal/pubsub.)
func TestFaultsOnRedisCluster(t *testing.T) {
	for _, s := range []scenario{edgeKilled, randomReconnects, edgeDrained, broadcastEdgeCrash,
		slowClient(), tokensExpiring(), badClientFrames(), connectionFlood()} {
		s.name += "-redis-cluster"
		s.cluster.redisCluster = true
		t.Run(s.name, func(t *testing.T) { s.run(t) })
	}
}

// TestDispatcherKilledOnRedisCluster kills, with SIGKILL, the dispatcher
// holding the lease of the ingest partition in use; the other one takes
// that partition over once the lease expires and claims what the dead one
// had read; the killed one comes back and stands by.
func TestDispatcherKilledOnRedisCluster(t *testing.T) {
	scenario{name: "dispatcher-sigkill-redis-cluster", cluster: clusterConfig{redisCluster: true},
		fault: func(r *run) {
			ctx := context.Background()
			r.at(4 * time.Second)
			holder := func() (string, int) {
				for _, s := range r.c.space.IngestStreams(clusterPartitions) {
					if r.c.rdb.XLen(ctx, s).Val() == 0 {
						continue
					}
					v, _ := r.c.rdb.Get(ctx, r.c.space.Lease(s)).Result()
					consumer, _, _ := strings.Cut(v, "/")
					n, err := strconv.Atoi(strings.TrimPrefix(consumer, "d"))
					if err != nil || n < 1 || n > len(r.c.dispatchers) {
						return s, -1
					}
					return s, n - 1
				}
				return "", -1
			}
			stream, i := holder()
			if i < 0 {
				r.t.Fatalf("no dispatcher holds the lease of the partition in use (%q)", stream)
			}
			r.c.dispatchers[i].kill()
			killed := time.Now()
			at, ok := waitUntil(15*time.Second, func() bool { _, h := holder(); return h >= 0 && h != i })
			if !ok {
				r.t.Fatalf("no other dispatcher took the lease of %s within 15s of the SIGKILL", stream)
			}
			r.t.Logf("SIGKILL to dispatcher d%d holding %s; lease taken over %v later", i+1, stream, at.Sub(killed).Round(time.Millisecond))
			r.at(9 * time.Second)
			r.c.dispatchers[i].restart(r.t, "dispatcher ready")
		}}.run(t)
}
