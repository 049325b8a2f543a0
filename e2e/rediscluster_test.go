package e2e

import (
	"context"
	"regexp"
	"strconv"
	"testing"
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
