package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestDispatcherOnRedisCluster runs two dispatchers on a real three-master
// cluster through every script they use: the leases of the partitions
// (heartbeat, renewal, release at shutdown: heartbeat.lua, renew.lua,
// release.lua), the removal of an idle consumer (delconsumer.lua) and the
// feed appends (append.lua, SPUBLISH). A script whose keys were in two
// slots would fail with CROSSSLOT.
func TestDispatcherOnRedisCluster(t *testing.T) {
	rdb := redistest.StartCluster(t, 3).Client(t)
	space := keys.Space{}
	ctx := context.Background()
	const partitions = 4
	streams := space.IngestStreams(partitions)
	masters := map[string]bool{}
	for _, s := range streams {
		m, err := rdb.MasterForKey(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		masters[m.Options().Addr] = true
	}
	if len(masters) < 2 {
		t.Fatalf("the %d partitions all live on one master", partitions)
	}
	// an idle consumer with nothing pending in one partition's group
	if err := rdb.XGroupCreateMkStream(ctx, streams[0], "herald-dispatchers", "0").Err(); err != nil {
		t.Fatal(err)
	}
	rdb.XGroupCreateConsumer(ctx, streams[0], "herald-dispatchers", "idle")

	var ds []*running
	for _, name := range []string{"c1", "c2"} {
		cfg := testConfig(t, space, name)
		cfg.Partitions = partitions
		cfg.ClaimInterval = 50 * time.Millisecond
		cfg.ConsumerIdleTimeout = 100 * time.Millisecond
		ds = append(ds, startDispatcher(t, rdb, cfg))
	}
	waitFor(t, 10*time.Second, "the partitions shared out", func() bool {
		return len(ds[0].Streams())+len(ds[1].Streams()) == partitions
	})
	var envs []events.Envelope
	for i := range 400 {
		envs = append(envs, numbered([]string{"acme", "globex", "initech", "umbrella"}[i%4], events.ToUser("u"+string(rune('a'+i%7))), i))
	}
	publish(t, rdb, space, partitions, envs)
	waitFor(t, 10*time.Second, "every partition drained", func() bool { return drained(t, rdb, streams) })
	total := 0
	for _, tenant := range []string{"acme", "globex", "initech", "umbrella"} {
		for u := range 7 {
			total += len(readFeed(t, rdb, space, keys.UserFeed(tenant, "u"+string(rune('a'+u)))))
		}
	}
	if total != len(envs) {
		t.Fatalf("%d notifications in the feeds, want %d", total, len(envs))
	}
	waitFor(t, 10*time.Second, "the idle consumer removed", func() bool {
		for _, c := range rdb.XInfoConsumers(ctx, streams[0], "herald-dispatchers").Val() {
			if c.Name == "idle" {
				return false
			}
		}
		return true
	})
	for _, d := range ds {
		d.stop(t)
	}
	for _, s := range streams {
		if err := rdb.Get(ctx, space.Lease(s)).Err(); err != redis.Nil {
			t.Errorf("lease of %s still held after shutdown (err %v)", s, err)
		}
	}
}

// TestReplicaAcksOnRedisCluster: with replica acks on a cluster with a
// replica per master, every event reaches its feed, the malformed ones
// reach the dead-letter stream once each, and every entry is acknowledged
// (the acknowledgements and dead letters waited for a replica too).
func TestReplicaAcksOnRedisCluster(t *testing.T) {
	rdb := redistest.StartCluster(t, 3, redistest.WithReplicas(1)).Client(t)
	space := keys.Space{}
	const partitions = 4
	streams := space.IngestStreams(partitions)
	cfg := testConfig(t, space, "r1")
	cfg.Partitions = partitions
	cfg.Append.Replicas.Replicas, cfg.Append.Replicas.Timeout = 1, 2*time.Second
	d := startDispatcher(t, rdb, cfg)
	waitFor(t, 10*time.Second, "the partitions taken", func() bool { return len(d.Streams()) == partitions })
	var envs []events.Envelope
	for i := range 200 {
		envs = append(envs, numbered("acme", events.ToUser("u"+string(rune('a'+i%7))), i))
	}
	publish(t, rdb, space, partitions, envs)
	for _, s := range streams[:2] {
		publishRaw(t, rdb, s, "type", "Bad Type", "tenant", "acme", "to", "user:ua", "data", "{}")
	}
	waitFor(t, 20*time.Second, "every partition drained", func() bool { return drained(t, rdb, streams) })
	total := 0
	for u := range 7 {
		total += len(readFeed(t, rdb, space, keys.UserFeed("acme", "u"+string(rune('a'+u)))))
	}
	if total != len(envs) {
		t.Fatalf("%d notifications in the feeds, want %d", total, len(envs))
	}
	if n := rdb.XLen(context.Background(), space.DLQ()).Val(); n != 2 {
		t.Fatalf("%d dead letters, want 2", n)
	}
	d.stop(t)
}
