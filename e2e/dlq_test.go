package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// malformedEntry is an ingest entry that breaks the contract, and the
// field its dead letter's reason must name.
type malformedEntry struct {
	name   string
	fields []string
	field  string
}

func malformedEntries() []malformedEntry {
	const drop = "\x00drop" // leaves the field out
	ok := func(override ...string) []string {
		f := map[string]string{"type": "e2e.bad", "tenant": "acme", "to": "user:a-u1", "data": "{}"}
		order := []string{"type", "tenant", "to", "data"}
		for i := 0; i+1 < len(override); i += 2 {
			if _, known := f[override[i]]; !known {
				order = append(order, override[i])
			}
			f[override[i]] = override[i+1]
		}
		var out []string
		for _, k := range order {
			if v := f[k]; v != drop {
				out = append(out, k, v)
			}
		}
		return out
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("u%d", i)
	}
	return []malformedEntry{
		{"no type", ok("type", drop), "type"},
		{"type with spaces", ok("type", "Order Placed"), "type"},
		{"type too long", ok("type", strings.Repeat("a", 65)), "type"},
		{"no tenant", ok("tenant", drop), "tenant"},
		{"bad tenant", ok("tenant", "ac me"), "tenant"},
		{"no data", ok("data", drop), "data"},
		{"data not JSON", ok("data", "{oops"), "data"},
		{"data an array", ok("data", "[1,2]"), "data"},
		{"data binary", ok("data", "\xff\xfe\x00\x01"), "data"},
		{"data over 64 KiB", ok("data", `{"x":"`+strings.Repeat("x", 70<<10)+`"}`), "data"},
		{"no audience for a type without a default", ok("to", drop), "to"},
		{"unknown audience", ok("to", "everyone"), "to"},
		{"bad user id", ok("to", "user:a b"), "to"},
		{"empty users list", ok("to", "users:"), "to"},
		{"1001 users", ok("to", "users:"+strings.Join(many, ",")), "to"},
		{"empty topic", ok("to", "topic:"), "to"},
		{"device with a tenant audience", ok("to", "tenant", "device", "phone"), "device"},
		{"bad device", ok("device", "a/b"), "device"},
		{"negative ttl", ok("ttl", "-5"), "ttl"},
		{"ttl not a number", ok("ttl", "soon"), "ttl"},
		{"ttl over 30 days", ok("ttl", "2592001"), "ttl"},
		{"ts not a number", ok("ts", "yesterday"), "ts"},
		{"unknown field", ok("color", "red"), "color"},
		{"idempotency key with a space", ok("id", "has space"), "id"},
		{"idempotency key too long", ok("id", strings.Repeat("k", 129)), "id"},
		{"only an extension field", []string{"x-trace", "abc"}, "type"},
	}
}

// TestMalformedEntriesGoToDLQ adds every kind of malformed entry to the
// ingest stream between the publisher's events: each one lands in the
// dead-letter stream once, with its original fields, the reason naming the
// bad field and its source id, none reaches a client, and the good traffic
// around it keeps flowing with nothing lost. `herald dlq list` shows them.
func TestMalformedEntriesGoToDLQ(t *testing.T) {
	cases := malformedEntries()
	ids := map[string]malformedEntry{} // source id → case
	scenario{
		name:        "malformed-entries",
		undisturbed: true,
		fault: func(r *run) {
			ctx := context.Background()
			r.at(2 * time.Second)
			for _, mc := range cases {
				id, err := publishRaw(ctx, r.c.rdb, r.c.space.Events(), mc.fields...)
				if err != nil {
					r.t.Fatalf("XADD %s: %v", mc.name, err)
				}
				ids[id] = mc
				time.Sleep(200 * time.Millisecond) // spread them through the traffic
			}
		},
		verify: func(r *run, res *result) {
			checkDeadLetters(r, ids)
			checkDLQList(r, len(ids))
		},
	}.run(t)
}

func checkDeadLetters(r *run, ids map[string]malformedEntry) {
	t := r.t
	ctx := context.Background()
	var msgs []redisEntry
	_, ok := waitUntil(10*time.Second, func() bool {
		m, err := r.c.rdb.XRange(ctx, r.c.space.DLQ(), "-", "+").Result()
		msgs = nil
		for _, x := range m {
			msgs = append(msgs, redisEntry{x.ID, x.Values})
		}
		return err == nil && len(msgs) >= len(ids)
	})
	if !ok {
		t.Errorf("dead-letter stream has %d entries, want %d", len(msgs), len(ids))
	}
	seen := map[string]int{}
	for _, m := range msgs {
		src := fmt.Sprint(m.values["source_id"])
		mc, known := ids[src]
		if !known {
			t.Errorf("dead letter %s for source %s, which is not one of the malformed entries: %v", m.id, src, clipValues(m.values))
			continue
		}
		seen[src]++
		reason := fmt.Sprint(m.values["reason"])
		if want := fmt.Sprintf("field %q", mc.field); !strings.Contains(reason, want) {
			t.Errorf("%s: reason %q does not name %s", mc.name, reason, want)
		}
		if got := fmt.Sprint(m.values["source_stream"]); got != r.c.space.Events() {
			t.Errorf("%s: source_stream %q, want %q", mc.name, got, r.c.space.Events())
		}
		for i := 0; i+1 < len(mc.fields); i += 2 {
			if got := fmt.Sprint(m.values[mc.fields[i]]); got != mc.fields[i+1] {
				t.Errorf("%s: dead letter field %s = %.40q, want the original %.40q", mc.name, mc.fields[i], got, mc.fields[i+1])
			}
		}
	}
	for src, mc := range ids {
		if seen[src] != 1 {
			t.Errorf("%s (entry %s): %d dead letters, want 1", mc.name, src, seen[src])
		}
	}
	t.Logf("%d malformed entries, %d dead letters, each with its reason", len(ids), len(msgs))
}

type redisEntry struct {
	id     string
	values map[string]any
}

func clipValues(v map[string]any) string {
	s := fmt.Sprint(v)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// checkDLQList runs `herald dlq list` and checks it counts the dead letters.
func checkDLQList(r *run, n int) {
	cmd := exec.Command(heraldBin, "dlq", "list", "--count", "100")
	cmd.Env = append(cleanEnv(), "HERALD_REDIS_URL="+r.c.redis.URL())
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Errorf("herald dlq list: %v\n%s", err, out)
		return
	}
	if want := fmt.Sprintf("%d dead letters in all", n); !strings.Contains(string(out), want) {
		r.t.Errorf("herald dlq list does not say %q:\n%s", want, out)
	}
}
