package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// malformed are entries that break the contract, each with the field its
// dead-letter reason must name.
var malformed = []struct {
	name   string
	field  string
	fields []string
}{
	{"missing type", "type", []string{"tenant", "acme", "to", "user:u1", "data", "{}"}},
	{"bad type", "type", []string{"type", "Order Placed", "tenant", "acme", "to", "user:u1", "data", "{}"}},
	{"missing tenant", "tenant", []string{"type", "a.b", "to", "user:u1", "data", "{}"}},
	{"bad tenant", "tenant", []string{"type", "a.b", "tenant", "ac me", "to", "user:u1", "data", "{}"}},
	{"missing audience", "to", []string{"type", "a.b", "tenant", "acme", "data", "{}"}},
	{"bad audience", "to", []string{"type", "a.b", "tenant", "acme", "to", "group:x", "data", "{}"}},
	{"bad user in list", "to", []string{"type", "a.b", "tenant", "acme", "to", "users:a,b c", "data", "{}"}},
	{"missing data", "data", []string{"type", "a.b", "tenant", "acme", "to", "user:u1"}},
	{"non-object data", "data", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "[1,2]"}},
	{"invalid json", "data", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{"}},
	{"oversize data", "data", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", `{"x":"` + strings.Repeat("y", 300) + `"}`}},
	{"bad idempotency key", "id", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "id", "has space"}},
	{"long idempotency key", "id", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "id", strings.Repeat("k", 129)}},
	{"device for tenant", "device", []string{"type", "a.b", "tenant", "acme", "to", "tenant", "data", "{}", "device", "phone"}},
	{"bad ttl", "ttl", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "ttl", "soon"}},
	{"bad ts", "ts", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "ts", "-5"}},
	{"unknown field", "color", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "color", "red"}},
	{"field named like a dlq field", "reason", []string{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}", "reason", "mine"}},
}

func TestMalformedEntriesGoToDLQAndValidOnesFlow(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	cfg := testConfig(t, space, "c1")
	cfg.Limits = events.Limits{MaxData: 200}
	d := startDispatcher(t, rdb, cfg)

	stream := space.Events()
	var want []string
	srcIDs := map[string]string{} // source id -> case name
	for i, c := range malformed {
		v := numbered("acme", events.ToUser("u1"), i)
		publish(t, rdb, space, 0, []events.Envelope{v})
		want = append(want, string(v.Data))
		srcIDs[publishRaw(t, rdb, stream, c.fields...)] = c.name
	}
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	checkSequence(t, readFeed(t, rdb, space, keys.UserFeed("acme", "u1")), want)

	q := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{Space: space, Limits: cfg.Limits})
	dls, err := q.List(context.Background(), 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != len(malformed) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(malformed))
	}
	for i, dl := range dls {
		c := malformed[i]
		if srcIDs[dl.SourceID] != c.name || dl.SourceStream != stream {
			t.Errorf("dead letter %d: source %s %s, want the entry of %q", i, dl.SourceStream, dl.SourceID, c.name)
		}
		if !strings.Contains(dl.Reason, `field "`+c.field+`"`) {
			t.Errorf("%s: reason %q does not name field %q", c.name, dl.Reason, c.field)
		}
		if len(dl.Fields) != len(c.fields)/2 {
			t.Errorf("%s: %d original fields kept, want %d: %v", c.name, len(dl.Fields), len(c.fields)/2, dl.Fields)
		}
		for j := 0; j < len(c.fields); j += 2 {
			if dl.Fields[c.fields[j]] != c.fields[j+1] {
				t.Errorf("%s: field %s = %q, want %q", c.name, c.fields[j], dl.Fields[c.fields[j]], c.fields[j+1])
			}
		}
		if dl.FailedAt.IsZero() || time.Since(dl.FailedAt) > time.Minute {
			t.Errorf("%s: failed_at %v", c.name, dl.FailedAt)
		}
	}
	// The counter moves just after the acknowledgement: wait for it.
	waitFor(t, 10*time.Second, "dlq_total{malformed} to count every dead letter", func() bool {
		return metricValue(t, d.Dispatcher, "herald_dispatcher_dlq_total", "malformed") == float64(len(malformed))
	})
}

func TestDLQReplayOfFixedEntryDelivers(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{Prefix: "p:"}
	const partitions = 4
	cfg := testConfig(t, space, "c1")
	cfg.Partitions = partitions
	startDispatcher(t, rdb, cfg)
	stream := space.IngestStream("acme", partitions)
	publishRaw(t, rdb, stream, "type", "a.b", "tenant", "acme", "to", "group:x", "data", `{"n":1}`)
	publishRaw(t, rdb, stream, "type", "a.b", "tenant", "acme", "to", "user:u1", "data", `{"n":2}`, "color", "red")
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(partitions)) })

	ctx := context.Background()
	q := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{Space: space, Partitions: partitions})
	dls, err := q.List(ctx, 10, "")
	if err != nil || len(dls) != 2 {
		t.Fatalf("list: %v, %d entries", err, len(dls))
	}
	shown, err := q.Show(ctx, dls[0].ID)
	if err != nil || shown.Fields["to"] != "group:x" {
		t.Fatalf("show: %v %+v", err, shown)
	}
	if _, err := q.Show(ctx, "1-1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Fatalf("show of a missing id: %v", err)
	}

	// Unfixed, both are refused and stay.
	res, err := q.Replay(ctx, []string{dls[0].ID, dls[1].ID, "9-9"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err == nil {
			t.Fatalf("replayed a malformed entry: %+v", r)
		}
	}
	// Fixed, the first is delivered and leaves the DLQ.
	fix := func(dl *dispatcher.DeadLetter) error {
		dl.Fields["to"] = "user:u1"
		return nil
	}
	res, err = q.Replay(ctx, []string{dls[0].ID}, fix)
	if err != nil || len(res) != 1 || res[0].Err != nil || res[0].Stream != stream {
		t.Fatalf("replay: %v %+v", err, res)
	}
	waitFor(t, 10*time.Second, "the replayed entry in the feed", func() bool {
		return feedSeq(t, rdb, space, keys.UserFeed("acme", "u1")) == 1
	})
	checkSequence(t, readFeed(t, rdb, space, keys.UserFeed("acme", "u1")), []string{`{"n":1}`})
	if n, _ := q.Len(ctx); n != 1 {
		t.Fatalf("%d dead letters left, want 1", n)
	}

	// ReplayAll with a fix that drops the unknown field.
	res, err = q.ReplayAll(ctx, func(dl *dispatcher.DeadLetter) error {
		delete(dl.Fields, "color")
		return nil
	})
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("replay all: %v %+v", err, res)
	}
	waitFor(t, 10*time.Second, "the second replayed entry", func() bool {
		return feedSeq(t, rdb, space, keys.UserFeed("acme", "u1")) == 2
	})
	publishRaw(t, rdb, stream, "type", "a.b", "tenant", "acme", "to", "nobody", "data", `{}`)
	waitFor(t, 10*time.Second, "a new dead letter", func() bool { n, _ := q.Len(ctx); return n == 1 })
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if n, _ := q.Len(ctx); n != 0 {
		t.Fatalf("%d dead letters after purge", n)
	}
}

// TestDeadLetterWrittenOnceWhileSettleFails: a batch whose acknowledgement
// keeps failing after its dead letters were written (here: replica acks
// asked of a Redis without replicas, so every WAIT falls short) is tried
// again and again, and its dead letter is in the stream once.
func TestDeadLetterWrittenOnceWhileSettleFails(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	cfg := testConfig(t, space, "c1")
	cfg.Append.Replicas.Replicas, cfg.Append.Replicas.Timeout = 1, 10*time.Millisecond
	d := startDispatcher(t, rdb, cfg)
	publishRaw(t, rdb, space.Events(), malformed[0].fields...)
	waitFor(t, 20*time.Second, "three failed tries", func() bool {
		n, _ := metricValueOK(t, d.Dispatcher, "herald_dispatcher_errors_total", "append")
		return n >= 3
	})
	if n := rdb.XLen(context.Background(), space.DLQ()).Val(); n != 1 {
		t.Fatalf("%d dead letters after the tries, want 1", n)
	}
	if n := metricValue(t, d.Dispatcher, "herald_dispatcher_dlq_total", "malformed"); n != 1 {
		t.Fatalf("dlq_total{malformed} = %v, want 1", n)
	}
}

// TestDLQReplayAllStopsAtWhatWasThere: ReplayAll replays the dead letters
// there were when it started and stops, though each one it replays is
// dead-lettered again meanwhile (as a running dispatcher does with an
// event that is still bad); an id named twice to Replay is published once.
func TestDLQReplayAllStopsAtWhatWasThere(t *testing.T) {
	_, rdb := newServer(t)
	space := keys.Space{}
	ctx := context.Background()
	dlq := space.DLQ()
	for i := range 3 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: dlq, Values: []any{"type", "a.b", "tenant", "acme", "to", "user:u1",
			"data", fmt.Sprintf(`{"n":%d}`, i), "reason", "test", "source_stream", space.Events(), "source_id", "1-1"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	q := dispatcher.NewDLQ(rdb, dispatcher.DLQConfig{Space: space})
	again := 0
	res, err := q.ReplayAll(ctx, func(dl *dispatcher.DeadLetter) error {
		if again++; again > 50 {
			return errors.New("replayed 50 times: ReplayAll does not stop")
		}
		// the event comes back as a new dead letter, at the end
		return rdb.XAdd(ctx, &redis.XAddArgs{Stream: dlq, Values: []any{"type", "a.b", "tenant", "acme", "to", "user:u1",
			"data", dl.Fields["data"], "reason", "again", "source_stream", space.Events(), "source_id", "1-2"}}).Err()
	})
	if err != nil || len(res) != 3 {
		t.Fatalf("replay all: %v, %d replayed (want the 3 there were)", err, len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("replay all: %+v", r)
		}
	}
	if n := rdb.XLen(ctx, space.Events()).Val(); n != 3 {
		t.Fatalf("%d events published, want 3", n)
	}

	dls, err := q.List(ctx, 1, "")
	if err != nil || len(dls) != 1 {
		t.Fatalf("list: %v %d", err, len(dls))
	}
	res, err = q.Replay(ctx, []string{dls[0].ID, dls[0].ID}, nil)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		t.Fatalf("replay of one id named twice: %v %+v", err, res)
	}
	if n := rdb.XLen(ctx, space.Events()).Val(); n != 4 {
		t.Fatalf("%d events published, want 4", n)
	}
}

// TestFailuresCountedUnderTheirOp: a failed operation is counted once,
// under the op it was part of. A dispatcher whose Redis user may not XACK
// fails its reads (the held acknowledgement rides in the read's MULTI),
// then the recovery's acknowledgement: counted as ack, not as read. One
// that may not XAUTOCLAIM fails its takeover's claim: counted as claim
// only, not as read too.
func TestFailuresCountedUnderTheirOp(t *testing.T) {
	srv, admin := newServer(t)
	ctx := context.Background()
	limited := func(user, deny string) *redis.Client {
		if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-"+deny).Err(); err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Username: user, Password: "pw"})
		t.Cleanup(func() { c.Close() })
		return c
	}

	space := keys.Space{Prefix: "noack:"}
	d := startDispatcher(t, limited("noack", "xack"), testConfig(t, space, "c1"))
	publishRaw(t, admin, space.Events(), "type", "a.b", "tenant", "acme", "to", "user:u1", "data", `{}`)
	waitFor(t, 10*time.Second, "failed acknowledgements", func() bool {
		n, _ := metricValueOK(t, d.Dispatcher, "herald_dispatcher_errors_total", "ack")
		return n >= 2
	})
	// the one read that failed, not the recovery's acknowledgements
	if n, _ := metricValueOK(t, d.Dispatcher, "herald_dispatcher_errors_total", "read"); n != 1 {
		t.Fatalf("errors{read} = %v, want 1", n)
	}
	d.stop(t)

	space = keys.Space{Prefix: "noclaim:"}
	d = startDispatcher(t, limited("noclaim", "xautoclaim"), testConfig(t, space, "c2"))
	waitFor(t, 10*time.Second, "failed claims", func() bool {
		n, _ := metricValueOK(t, d.Dispatcher, "herald_dispatcher_errors_total", "claim")
		return n >= 2
	})
	if n, _ := metricValueOK(t, d.Dispatcher, "herald_dispatcher_errors_total", "read"); n != 0 {
		t.Fatalf("errors{read} = %v after failed claims only, want 0", n)
	}
}
