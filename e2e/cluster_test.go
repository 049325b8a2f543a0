package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// secret signs the clients' HS256 tokens.
var secret = []byte("e2e-secret-that-is-at-least-32-bytes-long")

// plainHTTP makes one-off HTTP requests without keeping connections (and
// their goroutines) alive after the tests.
var plainHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// clusterConfig shapes a cluster. Zero values are the defaults.
type clusterConfig struct {
	dispatchers int      // 0 means 2
	edges       int      // 0 means 2
	edgeArgs    []string // extra flags of every edge
	edgeEnv     []string // extra environment of every edge
	dispArgs    []string // extra flags of every dispatcher
	// redisCluster runs Redis Cluster (3 masters) instead of one Redis,
	// with replicas replicas per master; dispatchers and the publisher
	// then use clusterPartitions ingest partitions.
	redisCluster bool
	replicas     int
}

// clusterPartitions is the number of ingest partitions on Redis Cluster
// (a partition's stream and its lease share a slot from 2 on).
const clusterPartitions = 4

// cluster is one Redis (AOF, appendfsync always) or a Redis Cluster, its
// dispatchers and its edges, all real processes.
type cluster struct {
	t           *testing.T
	cfg         clusterConfig
	redis       *redistest.Server  // one Redis; nil on Redis Cluster
	rc          *redistest.Cluster // Redis Cluster; nil on one Redis
	redisURL    string
	rdb         redis.UniversalClient
	space       keys.Space
	dispatchers []*proc
	edges       []*edge
}

// edge is one running `herald edge`.
type edge struct {
	*proc
	id     string
	listen string // host:port of /ws
	admin  string // host:port of /metrics
	dir    string
}

// url is the WebSocket endpoint.
func (e *edge) url() string { return "ws://" + e.listen + "/ws" }

func startCluster(t *testing.T, cfg clusterConfig) *cluster {
	t.Helper()
	c := &cluster{t: t, cfg: cfg}
	if cfg.redisCluster {
		c.rc = redistest.StartCluster(t, 3, redistest.WithReplicas(cfg.replicas),
			redistest.WithNodeArgs("--appendonly", "yes", "--appendfsync", "everysec"))
		c.rdb, c.redisURL = c.rc.Client(t), c.rc.URL()
	} else {
		c.redis = redistest.Start(t, redistest.WithAOF())
		c.rdb, c.redisURL = c.redis.Client(t), c.redis.URL()
	}
	for i := range max(cfg.dispatchers, 2) {
		c.startDispatcher(fmt.Sprintf("d%d", i+1), cfg.dispArgs)
	}
	for i := range max(cfg.edges, 2) {
		c.startEdge(fmt.Sprintf("e%d", i+1), cfg.edgeArgs, cfg.edgeEnv)
	}
	return c
}

// startDispatcher starts a dispatcher named consumer with a short lease, so
// that failover in tests takes about two seconds.
func (c *cluster) startDispatcher(consumer string, extra []string) *proc {
	args := append([]string{"dispatcher",
		"--consumer", consumer, "--lease-ttl", "2s", "--claim-idle", "2s", "--claim-interval", "1s",
		"--batch-size", "100", "--block", "500ms", "--feed-maxlen", "100000",
		"--admin-listen", "127.0.0.1:0", "--log-format", "json",
	}, extra...)
	if c.cfg.redisCluster {
		args = append(args, "--partitions", fmt.Sprint(clusterPartitions))
	}
	if c.cfg.replicas > 0 {
		args = append(args, "--replica-acks", "1", "--replica-ack-timeout", "500ms")
	}
	p, _ := startProc(c.t, "dispatcher-"+consumer, "dispatcher ready", args,
		[]string{"HERALD_REDIS_URL=" + c.redisURL})
	c.dispatchers = append(c.dispatchers, p)
	return p
}

// startEdge starts an edge with its own data directory, on free ports.
// Unless env says otherwise, the connect rate limit is off (load tests),
// and every frame that deflate shrinks goes deflated to the clients that
// negotiated permessage-deflate (the fleet's protocol 2 half).
func (c *cluster) startEdge(id string, extra, env []string) *edge {
	dir := c.t.TempDir()
	args := append([]string{"edge",
		"--edge-id", id, "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--log-format", "json",
	}, extra...)
	env = append([]string{"HERALD_REDIS_URL=" + c.redisURL, "HERALD_JWT_HS256_SECRET=" + string(secret),
		"HERALD_CONNECT_RATE_PER_IP=0", "HERALD_COMPRESSION_THRESHOLD=1"}, env...)
	p, ready := startProc(c.t, "edge-"+id, "edge ready", args, env)
	e := &edge{proc: p, id: id, dir: dir, listen: fmt.Sprint(ready["listen"]), admin: fmt.Sprint(ready["admin"])}
	// A restart must come back on the same port: the clients know it.
	for i, a := range p.args {
		if a == "--listen" {
			p.args[i+1] = e.listen
		}
	}
	c.edges = append(c.edges, e)
	return e
}

// restartEdge starts a stopped edge again on its port and data directory.
func (c *cluster) restartEdge(e *edge) {
	c.t.Helper()
	c.waitPortFree(e.listen)
	ready := e.restart(c.t, "edge ready")
	e.admin = fmt.Sprint(ready["admin"])
}

// waitPortFree waits until nothing accepts on addr (a killed process's
// socket is gone once it is reaped, so this is quick).
func (c *cluster) waitPortFree(addr string) {
	eventually(c.t, 10*time.Second, "port "+addr+" free", func() bool {
		resp, err := plainHTTP.Get("http://" + addr + "/healthz")
		if err != nil {
			return true
		}
		resp.Body.Close()
		return false
	})
}

// urls is the list of edge endpoints, rotated to start at edge i.
func (c *cluster) urls(i int) []string {
	var out []string
	for k := range c.edges {
		out = append(out, c.edges[(i+k)%len(c.edges)].url())
	}
	return out
}

// leaseHolder returns the index of the dispatcher holding the ingest
// stream's lease (the lease value is "<consumer>/<tag>"), or -1.
func (c *cluster) leaseHolder(ctx context.Context) int {
	v, err := c.rdb.Get(ctx, c.space.Lease(c.space.Events())).Result()
	if err != nil {
		return -1
	}
	consumer, _, _ := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimPrefix(consumer, "d"))
	if err != nil || n < 1 || n > len(c.dispatchers) {
		return -1
	}
	return n - 1
}

// metric scrapes one sample from an admin listener's /metrics, e.g.
// `herald_edge_closes_total{code="4008"}`; a missing sample is 0.
func metric(admin, sample string) (float64, error) {
	resp, err := plainHTTP.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("scrape %s: %w", admin, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == sample {
			return strconv.ParseFloat(strings.TrimSpace(val), 64)
		}
	}
	return 0, sc.Err()
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay) // polling a condition with a deadline
	}
}

// diagnose describes the pipeline's state for a failure message: the
// consumer group's lag and pending count, what each dispatcher handled and
// what each edge pushed.
func (c *cluster) diagnose() string {
	var b strings.Builder
	ctx := context.Background()
	groups, err := c.rdb.XInfoGroups(ctx, c.space.Events()).Result()
	fmt.Fprintf(&b, "ingest stream %s: groups %+v (err %v)\n", c.space.Events(), groups, err)
	for _, d := range c.dispatchers {
		state := "running"
		if d.exited() {
			state = fmt.Sprintf("exited (%v)", d.err)
		}
		fmt.Fprintf(&b, "%s: %s\n", d.name, state)
	}
	for _, e := range c.edges {
		if e.exited() {
			fmt.Fprintf(&b, "edge %s: exited (%v)\n", e.id, e.err)
			continue
		}
		sessions, _ := metric(e.admin, "herald_edge_sessions")
		pushed, _ := metric(e.admin, "herald_edge_frames_pushed_total")
		replayed, _ := metric(e.admin, "herald_edge_replayed_total")
		fmt.Fprintf(&b, "edge %s: %v sessions, %v frames pushed, %v entries replayed\n", e.id, sessions, pushed, replayed)
	}
	return b.String()
}
