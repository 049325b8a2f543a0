package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

const orderData = `{"order_id":"o-1","buyer_id":"42"}`

// publishRun runs the publish command with its own output buffers.
func publishRun(ctx context.Context, stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = publish(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func readStream(t *testing.T, rdb *redis.Client, stream string) []redis.XMessage {
	t.Helper()
	msgs, err := rdb.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestPublishCommandOne(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	if code := run([]string{"publish", "--redis-url", srv.URL(), "--tenant", "acme", "--type", "order.placed",
		"--data", orderData, "--id", "k-1", "--ttl", "90s", "--device", "phone"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	out, _, err := publishRun(t.Context(), "", "--redis-url", srv.URL(), "--tenant", "acme", "--type", "chat.message",
		"--to", "users:7,8", "--data", `{"text":"hi"}`)
	if err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, rdb, "herald:events")
	if len(msgs) != 2 || strings.TrimSpace(out) != msgs[1].ID {
		t.Fatalf("printed %q, stream holds %v", out, msgs)
	}
	first, err := events.ParseValues(msgs[0].Values)
	if err != nil {
		t.Fatal(err)
	}
	if first.To.String() != "user:42" || first.ID != "k-1" || first.TTL != 90*time.Second || first.Device != "phone" || first.TS == 0 {
		t.Fatalf("published %+v", first)
	}
}

func TestPublishCommandStdinAndPartitions(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	t.Setenv("HERALD_TENANT", "acme") // flags come from the environment too
	_, _, err := publishRun(t.Context(), orderData+"\n", "--redis-url", srv.URL(), "--type", "order.placed", "--partitions", "8")
	if err != nil {
		t.Fatal(err)
	}
	msgs := readStream(t, rdb, "herald:events:{7}") // fnv1a32("acme") mod 8
	if len(msgs) != 1 || msgs[0].Values["data"] != orderData || msgs[0].Values["tenant"] != "acme" {
		t.Fatalf("partition 7 holds %v", msgs)
	}
}

func TestPublishCommandMany(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	out, progress, err := publishRun(t.Context(), "", "--redis-url", srv.URL(), "--tenant", "acme", "--type", "load.test",
		"--to", "tenant", "--data", "{}", "--count", "250", "--batch", "100", "--id", "bulk")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "published 250 in ") || strings.Contains(progress, "\r") {
		t.Fatalf("stdout %q, stderr %q", out, progress)
	}
	msgs := readStream(t, rdb, "herald:events")
	if len(msgs) != 250 {
		t.Fatalf("%d entries, want 250", len(msgs))
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("bulk-%d", i+1); m.Values["id"] != want {
			t.Fatalf("entry %d has id %v, want %s", i, m.Values["id"], want)
		}
	}
}

func TestPublishCommandRate(t *testing.T) {
	srv := redistest.Start(t)
	start := time.Now()
	_, _, err := publishRun(t.Context(), "", "--redis-url", srv.URL(), "--tenant", "acme", "--type", "load.test",
		"--to", "tenant", "--data", "{}", "--count", "30", "--rate", "100")
	if err != nil {
		t.Fatal(err)
	}
	// 30 events at 100/s: the last batch may leave 0.29 s after the first.
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("30 events at 100/s took %v", d)
	}
	if n := srv.Client(t).XLen(t.Context(), "herald:events").Val(); n != 30 {
		t.Fatalf("%d entries, want 30", n)
	}
}

func TestPublishCommandInterrupted(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, _, err := publishRun(ctx, "", "--redis-url", srv.URL(), "--tenant", "acme", "--type", "load.test",
			"--to", "tenant", "--data", "{}", "--count", "1000000", "--rate", "2000")
		done <- result{out, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.XLen(t.Context(), "herald:events").Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing published within 10s")
		}
		time.Sleep(10 * time.Millisecond) // polling Redis: there is nothing to wait on
	}
	cancel()
	select {
	case r := <-done:
		if r.err != nil || !strings.Contains(r.out, "interrupted") {
			t.Fatalf("interrupted run: %q, %v", r.out, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publish did not stop after cancel")
	}
	if n := rdb.XLen(t.Context(), "herald:events").Val(); n == 0 || n >= 1000000 {
		t.Fatalf("%d entries after an interrupted run", n)
	}
}

func TestPublishCommandRejects(t *testing.T) {
	srv := redistest.Start(t)
	base := []string{"--redis-url", srv.URL(), "--tenant", "acme", "--type", "chat.message", "--data", "{}"}
	cases := []struct {
		args  []string
		field string
	}{
		{[]string{"--to", "group:1"}, `field "to"`},
		{nil, `field "to"`},
		{[]string{"--to", "tenant", "--device", "phone"}, `field "device"`},
		{[]string{"--to", "user:1", "--id", "has space"}, `field "id"`},
		{[]string{"--to", "user:1", "--ttl", "-1s"}, `field "ttl"`},
		{[]string{"--to", "user:1", "--data", "[1]"}, `field "data"`},
		{[]string{"--to", "user:1", "--tenant", "a:b"}, `field "tenant"`},
		{[]string{"--to", "user:1", "--count", "0"}, "--count"},
	}
	for _, tc := range cases {
		_, _, err := publishRun(t.Context(), "", append(base, tc.args...)...)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.field) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one usage line naming %s", tc.args, err, tc.field)
		}
	}
	if code := run(append([]string{"publish"}, base...)); code != 2 {
		t.Errorf("exit %d for a missing audience, want 2", code)
	}
	if n := srv.Client(t).Exists(t.Context(), "herald:events").Val(); n != 0 {
		t.Fatal("a refused event was written")
	}
}
