package dispatcher_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// mixedEvents are events of 4 tenants to users, user lists, the tenant and
// topics, some with idempotency keys that repeat.
func mixedEvents(n int) []events.Envelope {
	tenants := []string{"acme", "globex", "initech", "umbrella"}
	out := make([]events.Envelope, n)
	for i := range out {
		var to events.Audience
		switch i % 7 {
		case 0, 1, 2:
			to = events.ToUser(fmt.Sprintf("u%d", i%5))
		case 3:
			to = events.ToUsers(fmt.Sprintf("u%d", i%5), fmt.Sprintf("u%d", (i+1)%5))
		case 4:
			to = events.ToTenant()
		default:
			to = events.ToTopic(fmt.Sprintf("t%d", i%2))
		}
		out[i] = numbered(tenants[i%len(tenants)], to, i)
		if i%11 == 0 {
			out[i].ID = fmt.Sprintf("k%d", i%33) // repeats every 33 events
		}
	}
	return out
}

// allFeeds reads every feed under space, keyed by the feed's hash tag.
func allFeeds(t *testing.T, rdb *redis.Client, space keys.Space) map[string][]feedEntry {
	t.Helper()
	ctx := context.Background()
	out := map[string][]feedEntry{}
	iter := rdb.Scan(ctx, 0, space.Prefix+"feed:{*}", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if !strings.HasSuffix(key, "}") {
			continue // meta and idempotency keys
		}
		out[key[strings.IndexByte(key, '{'):]] = readFeedKey(t, rdb, key)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDispatcherGroupsMatchOneDispatcher runs the same events through one,
// two and three dispatchers over 4 partitions, with dispatchers joining and
// leaving while they work, and expects identical feeds.
func TestDispatcherGroupsMatchOneDispatcher(t *testing.T) {
	_, rdb := newServer(t)
	const partitions, n = 4, 6000
	envs := mixedEvents(n)
	run := func(prefix string, dispatchers int) map[string][]feedEntry {
		space := keys.Space{Prefix: prefix}
		cfg := testConfig(t, space, "")
		cfg.Partitions = partitions
		cfg.BatchSize = 50
		var ds []*running
		for i := range dispatchers {
			cfg.Consumer = fmt.Sprintf("%s-d%d", prefix, i)
			ds = append(ds, startDispatcher(t, rdb, cfg))
			publish(t, rdb, space, partitions, envs[i*n/(2*dispatchers):(i+1)*n/(2*dispatchers)])
		}
		share := (partitions + dispatchers - 1) / dispatchers
		waitFor(t, 10*time.Second, "leases to spread", func() bool {
			total := 0
			for _, d := range ds {
				if len(d.Streams()) > share {
					return false
				}
				total += len(d.Streams())
			}
			return total == partitions
		})
		publish(t, rdb, space, partitions, envs[n/2:3*n/4])
		if dispatchers == 3 {
			ds[0].stop(t) // its streams move to the others mid-stream
		}
		publish(t, rdb, space, partitions, envs[3*n/4:])
		waitFor(t, 60*time.Second, "the group to drain", func() bool {
			return drained(t, rdb, space.IngestStreams(partitions))
		})
		return allFeeds(t, rdb, space)
	}
	one := run("one:", 1)
	if len(one) < 4*(5+1+1) {
		t.Fatalf("only %d feeds", len(one))
	}
	for _, k := range []int{2, 3} {
		got := run(fmt.Sprintf("n%d:", k), k)
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(one))) {
			t.Fatalf("%d dispatchers made feeds %v, one made %v", k, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(one)))
		}
		for tag, want := range one {
			if !slices.Equal(got[tag], want) {
				t.Fatalf("%d dispatchers: feed %s differs from one dispatcher's (%d vs %d entries)", k, tag, len(got[tag]), len(want))
			}
			for i, e := range want {
				if e.ID != fmt.Sprintf("%d-0", i+1) {
					t.Fatalf("feed %s entry %d has id %s", tag, i, e.ID)
				}
			}
		}
	}
}

func TestStandbyTakesOverWhenHolderStops(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	ctx := context.Background()
	first := startDispatcher(t, rdb, testConfig(t, space, "first"))
	waitFor(t, 5*time.Second, "first to hold the lease", func() bool { return len(first.Streams()) == 1 })
	second := startDispatcher(t, rdb, testConfig(t, space, "second"))
	waitFor(t, 5*time.Second, "second to heartbeat", func() bool {
		return rdb.ZCard(ctx, space.Dispatchers()).Val() == 2
	})
	if len(second.Streams()) != 0 {
		t.Fatal("the standby holds a lease while the holder is alive")
	}
	envs := make([]events.Envelope, 2000)
	want := make([]string, len(envs))
	for i := range envs {
		envs[i] = numbered("acme", events.ToUser("u1"), i)
		want[i] = string(envs[i].Data)
	}
	f := keys.UserFeed("acme", "u1")
	publish(t, rdb, space, 0, envs[:1000])
	waitFor(t, 10*time.Second, "first's events", func() bool { return feedSeq(t, rdb, space, f) == 1000 })

	first.stop(t)
	if v := rdb.Get(ctx, space.Lease(space.Events())).Val(); strings.HasPrefix(v, "first/") {
		t.Fatalf("lease still held by %q after a graceful stop", v)
	}
	publish(t, rdb, space, 0, envs[1000:])
	waitFor(t, 10*time.Second, "second to take over", func() bool { return len(second.Streams()) == 1 })
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	checkSequence(t, readFeed(t, rdb, space, f), want)
	if got := metricValue(t, second.Dispatcher, "herald_dispatcher_leases_held", ""); got != 1 {
		t.Errorf("leases_held = %v", got)
	}
}

// A graceful stop finishes and acknowledges the batch in flight: after
// Run returns, nothing is pending and every entry the group read is in
// the feed.
func TestGracefulShutdownAcksBatchInFlight(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	ctx := context.Background()
	envs := make([]events.Envelope, 20000)
	for i := range envs {
		envs[i] = numbered("acme", events.ToUser("u1"), i)
	}
	publish(t, rdb, space, 0, envs)
	cfg := testConfig(t, space, "c1")
	cfg.BatchSize = 200
	d := startDispatcher(t, rdb, cfg)
	f := keys.UserFeed("acme", "u1")
	waitFor(t, 30*time.Second, "some events in the feed", func() bool { return feedSeq(t, rdb, space, f) >= 2000 })
	d.stop(t)

	g := rdb.XInfoGroups(ctx, space.Events()).Val()[0]
	seq := feedSeq(t, rdb, space, f)
	t.Logf("stopped at seq %d; group read %d entries, %d pending", seq, g.EntriesRead, g.Pending)
	if g.Pending != 0 {
		t.Fatalf("%d entries pending after a graceful stop", g.Pending)
	}
	if int64(seq) != g.EntriesRead || seq >= len(envs) {
		t.Fatalf("feed seq %d, group read %d of %d", seq, g.EntriesRead, len(envs))
	}
	if n := rdb.Exists(ctx, space.Lease(space.Events())).Val(); n != 0 {
		t.Fatal("lease not released")
	}
	if n := rdb.ZCard(ctx, space.Dispatchers()).Val(); n != 0 {
		t.Fatal("still in the live dispatcher set")
	}
}

// Entries taken by a consumer outside Herald and never acknowledged are
// claimed once idle for ClaimIdle and delivered: late, but not lost.
func TestStrayConsumerEntriesAreClaimed(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	ctx := context.Background()
	cfg := testConfig(t, space, "c1")
	cfg.ClaimInterval = 50 * time.Millisecond
	cfg.ClaimIdle = 200 * time.Millisecond
	d := startDispatcher(t, rdb, cfg)
	waitFor(t, 5*time.Second, "the lease", func() bool { return len(d.Streams()) == 1 })

	const n = 300
	want := map[string]bool{}
	stray := 0
	for i := range n {
		e := numbered("acme", events.ToUser("u1"), i)
		want[string(e.Data)] = true
		publish(t, rdb, space, 0, []events.Envelope{e})
		if i%10 == 0 {
			res, _ := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: "herald-dispatchers", Consumer: "stray", Streams: []string{space.Events(), ">"}, Count: 1, Block: -1,
			}).Result()
			if len(res) > 0 {
				stray += len(res[0].Messages)
			}
		}
	}
	t.Logf("the stray consumer took %d entries", stray)
	if stray == 0 {
		t.Fatal("the dispatcher read every entry before the stray consumer could; nothing to claim")
	}
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	got := readFeed(t, rdb, space, keys.UserFeed("acme", "u1"))
	seen := map[string]bool{}
	for _, e := range got {
		if seen[e.Data] || !want[e.Data] {
			t.Fatalf("entry %s delivered twice or never published", e.Data)
		}
		seen[e.Data] = true
	}
	if len(seen) != n {
		t.Fatalf("%d of %d events delivered", len(seen), n)
	}
	if metricValue(t, d.Dispatcher, "herald_dispatcher_reclaimed_total", "") != float64(stray) {
		t.Errorf("reclaimed_total = %v, want %d", metricValue(t, d.Dispatcher, "herald_dispatcher_reclaimed_total", ""), stray)
	}
}
