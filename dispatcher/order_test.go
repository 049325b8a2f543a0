package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
)

func feedConfig(maxLen int64) feed.AppendConfig { return feed.AppendConfig{MaxLen: maxLen} }

func TestOrderOfTenThousandEvents(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	const n = 10000
	envs := make([]events.Envelope, n)
	want := make([]string, n)
	for i := range envs {
		envs[i] = numbered("acme", events.ToUser("u1"), i+1)
		want[i] = string(envs[i].Data)
	}
	d := startDispatcher(t, rdb, testConfig(t, space, "c1"))
	publish(t, rdb, space, 0, envs)
	f := keys.UserFeed("acme", "u1")
	waitFor(t, 30*time.Second, "10000 entries in the feed", func() bool { return feedSeq(t, rdb, space, f) >= n })
	waitFor(t, 5*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	checkSequence(t, readFeed(t, rdb, space, f), want)
	if got := metricValue(t, d.Dispatcher, "herald_dispatcher_events_total", "delivered"); got != n {
		t.Errorf("events_total = %v, want %d", got, n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{Prefix: "idem:"}
	a, b, c := numbered("acme", events.ToUser("u1"), 1), numbered("acme", events.ToUser("u1"), 2), numbered("acme", events.ToUser("u1"), 3)
	a.ID, b.ID = "pay-1", "pay-1"
	startDispatcher(t, rdb, testConfig(t, space, "c1"))
	publish(t, rdb, space, 0, []events.Envelope{a, b, c})
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	got := readFeed(t, rdb, space, keys.UserFeed("acme", "u1"))
	checkSequence(t, got, []string{string(a.Data), string(c.Data)})
}

func TestAudiencesAndFields(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	e1 := numbered("acme", events.ToUsers("a", "b", "a"), 1)
	e2 := numbered("acme", events.ToTenant(), 2)
	e3 := numbered("acme", events.ToTopic("news"), 3)
	e4 := numbered("acme", events.ToUser("a"), 4)
	e4.Device, e4.TTL = "phone", 90*time.Second
	startDispatcher(t, rdb, testConfig(t, space, "c1"))
	publish(t, rdb, space, 0, []events.Envelope{e1, e2, e3, e4})
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })

	checkSequence(t, readFeed(t, rdb, space, keys.UserFeed("acme", "a")), []string{string(e1.Data), string(e4.Data)})
	checkSequence(t, readFeed(t, rdb, space, keys.UserFeed("acme", "b")), []string{string(e1.Data)})
	checkSequence(t, readFeed(t, rdb, space, keys.TenantFeed("acme")), []string{string(e2.Data)})
	checkSequence(t, readFeed(t, rdb, space, keys.TopicFeed("acme", "news")), []string{string(e3.Data)})
	last := readFeed(t, rdb, space, keys.UserFeed("acme", "a"))[1]
	wantExp := fmt.Sprint(e4.TS + 90000)
	if last.Device != "phone" || last.Exp != wantExp || last.TS != fmt.Sprint(e4.TS) || last.Type != "test.numbered" {
		t.Fatalf("entry with device and ttl: %+v, want device phone, ts %d, exp %s", last, e4.TS, wantExp)
	}
}

func TestTSDefaultsToEntryTime(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	startDispatcher(t, rdb, testConfig(t, space, "c1"))
	id := publishRaw(t, rdb, space.Events(), "type", "a.b", "tenant", "acme", "to", "user:u", "data", "{}", "ttl", "5")
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	got := readFeed(t, rdb, space, keys.UserFeed("acme", "u"))
	var ms int64
	fmt.Sscanf(id, "%d-", &ms)
	if len(got) != 1 || got[0].TS != fmt.Sprint(ms) || got[0].Exp != fmt.Sprint(ms+5000) {
		t.Fatalf("feed %+v, want ts %d (the entry id's time) and exp 5s later", got, ms)
	}
}

// TestLingerGathersABatch: an entry that arrives while the worker pauses
// after a small batch waits for the pause, and the ones that arrive with it
// are handled in the same batch.
func TestLingerGathersABatch(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	cfg := testConfig(t, space, "c1")
	cfg.Linger = time.Second // far longer than the ten XADDs below take
	d := startDispatcher(t, rdb, cfg)
	batches := func() float64 { return metricValue(t, d.Dispatcher, "herald_dispatcher_batch_duration_seconds", "") }
	f := keys.UserFeed("acme", "u1")
	publish(t, rdb, space, 0, []events.Envelope{numbered("acme", events.ToUser("u1"), 0)})
	waitFor(t, 10*time.Second, "the first entry", func() bool { return feedSeq(t, rdb, space, f) == 1 })
	start := time.Now()
	for i := 1; i <= 10; i++ { // one at a time, as a trickle
		publish(t, rdb, space, 0, []events.Envelope{numbered("acme", events.ToUser("u1"), i)})
	}
	if time.Since(start) > cfg.Linger/2 {
		t.Skipf("publishing took %v, too slow to show the pause", time.Since(start))
	}
	waitFor(t, 10*time.Second, "eleven entries", func() bool { return feedSeq(t, rdb, space, f) == 11 })
	// A batch is counted after its acknowledgement, which follows the append.
	waitFor(t, 10*time.Second, "the second batch counted", func() bool { return batches() >= 2 })
	if got := batches(); got != 2 {
		t.Errorf("handled in %v batches, want 2: the first entry, then the ten that arrived during the pause", got)
	}
}
