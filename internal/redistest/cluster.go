package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a local Redis Cluster of real redis-server processes: its
// masters first in Nodes, the 16,384 slots split evenly among them, then
// their replicas, if any (Masters of them).
type Cluster struct {
	Nodes   []*Server
	Masters int
}

// ClusterOption shapes StartCluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	replicas int
	args     []string
}

// WithReplicas gives every master n replicas (Nodes[masters+i*n ...] follow
// master i), for failover tests; the node timeout is 1 s, so a killed
// master's replica takes over about 2 s later.
func WithReplicas(n int) ClusterOption { return func(c *clusterConfig) { c.replicas = n } }

// WithNodeArgs adds redis-server arguments to every node (persistence...).
func WithNodeArgs(args ...string) ClusterOption {
	return func(c *clusterConfig) { c.args = append(c.args, args...) }
}

// StartCluster launches a cluster of masters nodes (at least 1) for the
// test and waits until every node reports cluster_state:ok and sees the
// others, and every replica is in sync with its master. Each node is a
// Start with cluster mode on; all are killed at the test's cleanup.
func StartCluster(tb testing.TB, masters int, opts ...ClusterOption) *Cluster {
	tb.Helper()
	var cfg clusterConfig
	for _, o := range opts {
		o(&cfg)
	}
	masters = max(masters, 1)
	total := masters * (1 + cfg.replicas)
	ctx, cancel := context.WithTimeout(tb.Context(), 30*time.Second)
	defer cancel()
	c := &Cluster{Masters: masters}
	clients := make([]*redis.Client, total)
	timeout := "2000"
	if cfg.replicas > 0 {
		timeout = "1000"
	}
	for i := range total {
		args := append([]string{"--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1",
			"--cluster-node-timeout", timeout, "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i)}, cfg.args...)
		srv := Start(tb, WithArgs(args...))
		c.Nodes = append(c.Nodes, srv)
		clients[i] = srv.Client(tb)
	}
	per := 16384 / masters
	host, port, _ := strings.Cut(c.Nodes[0].Addr(), ":")
	for i, cl := range clients {
		if i < masters {
			lo, hi := i*per, (i+1)*per-1
			if i == masters-1 {
				hi = 16383
			}
			if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
				tb.Fatalf("cluster node %d: ADDSLOTSRANGE %d %d: %v", i, lo, hi, err)
			}
		}
		if i > 0 {
			if err := cl.ClusterMeet(ctx, host, port).Err(); err != nil {
				tb.Fatalf("cluster node %d: MEET: %v", i, err)
			}
		}
	}
	c.waitState(ctx, tb, clients, total)
	for i := masters; i < total; i++ {
		master := (i - masters) / max(cfg.replicas, 1)
		id, err := clients[master].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			tb.Fatalf("cluster node %d: MYID: %v", master, err)
		}
		// the replica must know the master's id first (gossip)
		for {
			err = clients[i].Do(ctx, "CLUSTER", "REPLICATE", id).Err()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("cluster node %d: REPLICATE %s: %v", i, id, err)
			}
			time.Sleep(20 * time.Millisecond) // polling the cluster's own gossip
		}
	}
	for i := masters; i < total; i++ {
		for {
			info := clients[i].Info(ctx, "replication").Val()
			if strings.Contains(info, "master_link_status:up") {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("cluster replica %d not in sync after 30s:\n%s", i, info)
			}
			time.Sleep(20 * time.Millisecond) // polling the replication link
		}
	}
	c.waitState(ctx, tb, clients, total)
	return c
}

// waitState waits until every node says cluster_state:ok and knows total
// nodes.
func (c *Cluster) waitState(ctx context.Context, tb testing.TB, clients []*redis.Client, total int) {
	tb.Helper()
	for i, cl := range clients {
		for {
			info := cl.ClusterInfo(ctx).Val()
			if strings.Contains(info, "cluster_state:ok") && strings.Contains(info, fmt.Sprintf("cluster_known_nodes:%d", total)) {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("cluster node %d not ok after 30s:\n%s", i, info)
			}
			time.Sleep(20 * time.Millisecond) // polling the cluster's own gossip
		}
	}
}

// URL is the cluster's redis+cluster:// URL, for the herald binary.
func (c *Cluster) URL() string {
	return "redis+cluster://" + strings.Join(c.Addrs()[:c.Masters], ",")
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
