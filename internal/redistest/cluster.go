package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of real redis-server processes, one
// master per node and no replicas, the 16,384 slots split evenly.
type Cluster struct {
	Nodes []*Server
}

// StartCluster launches a cluster of masters nodes (at least 1) for the
// test and waits until every node reports cluster_state:ok and sees the
// others. Each node is a Start with cluster mode on; all are killed at the
// test's cleanup.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	masters = max(masters, 1)
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	c := &Cluster{}
	clients := make([]*redis.Client, masters)
	for i := range masters {
		srv := Start(tb, WithArgs("--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", "2000", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i)))
		c.Nodes = append(c.Nodes, srv)
		clients[i] = srv.Client(tb)
	}
	per := 16384 / masters
	for i, cl := range clients {
		lo, hi := i*per, (i+1)*per-1
		if i == masters-1 {
			hi = 16383
		}
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			tb.Fatalf("cluster node %d: ADDSLOTSRANGE %d %d: %v", i, lo, hi, err)
		}
		if i > 0 {
			host, port, _ := strings.Cut(c.Nodes[0].Addr(), ":")
			if err := cl.ClusterMeet(ctx, host, port).Err(); err != nil {
				tb.Fatalf("cluster node %d: MEET: %v", i, err)
			}
		}
	}
	for i, cl := range clients {
		for {
			info := cl.ClusterInfo(ctx).Val()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", masters)) {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("cluster node %d not ok after 30s:\n%s", i, info)
			}
			time.Sleep(20 * time.Millisecond) // polling the cluster's own gossip
		}
	}
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// Client returns a cluster client, closed at the test's cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}
