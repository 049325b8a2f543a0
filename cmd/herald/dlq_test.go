package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// dlqRun runs the dlq command with stdin text; interactive says whether
// stdin counts as a terminal.
func dlqRun(url, stdin string, interactive bool, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	cio := dlqIO{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, interactive: interactive}
	err := dlq(context.Background(), append(args, "--redis-url", url), cio)
	return out.String(), errOut.String(), err
}

// seedDLQ runs a dispatcher over three malformed entries and waits until
// they are dead letters; it returns their ids, oldest first.
func seedDLQ(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	for _, f := range [][]any{
		{"type", "a.b", "tenant", "acme", "to", "group:x", "data", `{"n":1}`},
		{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", `{"n":2}`, "color", "red"},
		{"tenant", "acme", "to", "user:u1", "data", `{"n":3}`},
	} {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: "herald:events", Values: f})
	}
	d, err := dispatcher.New(rdb, dispatcher.Config{Consumer: "seed", LeaseTTL: 300 * time.Millisecond, Block: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(dctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	pollUntil(t, 10*time.Second, "3 dead letters", func() bool { return rdb.XLen(ctx, "herald:dlq").Val() == 3 })
	var ids []string
	for _, m := range rdb.XRange(ctx, "herald:dlq", "-", "+").Val() {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestDLQCommandListShowReplay(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ids := seedDLQ(t, rdb)
	url := srv.URL()

	out, _, err := dlqRun(url, "", false, "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ids[0]) || !strings.Contains(out, `field "to"`) || !strings.Contains(out, `field "color"`) ||
		!strings.Contains(out, "3 dead letters in all") {
		t.Fatalf("list:\n%s", out)
	}
	out, _, err = dlqRun(url, "", false, "list", "--count", "1")
	if err != nil || !strings.Contains(out, "--after "+ids[0]) || strings.Contains(out, ids[1]) {
		t.Fatalf("list --count 1: %v\n%s", err, out)
	}
	out, _, err = dlqRun(url, "", false, "show", ids[1])
	if err != nil || !strings.Contains(out, "color: red") || !strings.Contains(out, "source:      herald:events ") {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if _, _, err := dlqRun(url, "", false, "show", "1-1"); !errors.Is(err, dispatcher.ErrNotFound) {
		t.Fatalf("show of a missing id: %v", err)
	}

	// Unfixed, an entry stays; fixed, it is published and leaves the DLQ.
	out, _, err = dlqRun(url, "", false, "replay", ids[0])
	if err == nil || !strings.Contains(out, "kept     "+ids[0]) {
		t.Fatalf("replay of a malformed entry: %v\n%s", err, out)
	}
	out, _, err = dlqRun(url, "", false, "replay", "--set", "to=user:u1", ids[0], "--unset", "color", ids[1])
	if err != nil || strings.Count(out, "replayed ") != 2 {
		t.Fatalf("replay with fixes: %v\n%s", err, out)
	}
	pollUntil(t, 10*time.Second, "the replayed entries in the feed", func() bool {
		return rdb.XLen(context.Background(), (keys.Space{}).FeedStream(keys.UserFeed("acme", "u1"))).Val() == 2
	})
	if n := rdb.XLen(context.Background(), "herald:dlq").Val(); n != 1 {
		t.Fatalf("%d dead letters left, want 1", n)
	}
}

func TestDLQCommandConfirmations(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	seedDLQ(t, rdb)
	url := srv.URL()
	ctx := context.Background()

	// No terminal and no --yes: refused, nothing changes.
	for _, args := range [][]string{{"purge"}, {"replay", "--all"}} {
		if _, _, err := dlqRun(url, "y\n", false, args...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--yes") {
			t.Fatalf("%v without a terminal: %v", args, err)
		}
	}
	// A terminal that answers no.
	_, prompt, err := dlqRun(url, "n\n", true, "purge")
	if !errors.Is(err, errNotConfirmed) || !strings.Contains(prompt, "delete all 3 dead letters? [y/N]") {
		t.Fatalf("purge answered no: %v, prompt %q", err, prompt)
	}
	if n := rdb.XLen(ctx, "herald:dlq").Val(); n != 3 {
		t.Fatalf("%d dead letters after a refused purge", n)
	}
	// replay --all: all three are still malformed and stay.
	out, _, err := dlqRun(url, "yes\n", true, "replay", "--all")
	if err == nil || strings.Count(out, "kept ") != 3 {
		t.Fatalf("replay --all: %v\n%s", err, out)
	}
	// --yes needs no terminal.
	out, _, err = dlqRun(url, "", false, "purge", "--yes")
	if err != nil || out != "purged 3 dead letters\n" {
		t.Fatalf("purge --yes: %v %q", err, out)
	}
	for _, args := range [][]string{{}, {"bogus"}, {"show"}, {"replay"}, {"replay", "--all", "1-0"}, {"list", "x"}, {"replay", "--set", "novalue", "1-0"}} {
		if _, _, err := dlqRun(url, "", false, args...); !errors.Is(err, errUsage) {
			t.Errorf("dlq %v: %v, want a usage error", args, err)
		}
	}
	if code := run([]string{"dlq", "list", "--redis-url", url}); code != 0 {
		t.Fatalf("herald dlq list: exit %d", code)
	}
}
