package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
)

// Herald's Redis clients connect without CLIENT SETINFO, which Redis before
// 7.2 refuses with an error on every new connection: a new client adds no
// error to the server's error counts.
func TestRedisClientSendsNoSetInfo(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	errorCount := func() string {
		rdb, err := redisOptions{url: srv.URL()}.client(ctx) // a new connection each time
		if err != nil {
			t.Fatal(err)
		}
		defer rdb.Close()
		stats, err := rdb.Info(ctx, "errorstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		return stats
	}
	before := errorCount()
	if after := errorCount(); after != before {
		t.Fatalf("connecting added errors on the server:\nbefore %q\nafter  %q", before, after)
	}
}

// go-redis's own messages go to the command's structured log at WARN.
func TestRedisMessagesGoToTheLog(t *testing.T) {
	var buf bytes.Buffer
	log, err := logOptions{level: "info", format: "json"}.logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	redisLog{log}.Printf(context.Background(), "redis: connection pool: %s", "dial failed")
	out := buf.String()
	if !strings.Contains(out, `"level":"WARN"`) || !strings.Contains(out, "connection pool: dial failed") {
		t.Fatalf("log line %q", out)
	}
}
