package redisurl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestOpenAnswersOrSaysWhy(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := Open(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	if _, err := Open(context.Background(), "redis://:s3cret@127.0.0.1:1/0"); err == nil ||
		!strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable Redis: %v; want a message without the password", err)
	}
}

func TestNew(t *testing.T) {
	c, err := New("redis+cluster://u:p@127.0.0.1:7000,127.0.0.1:7001")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("redis+cluster:// gave %T", c)
	}
	c.Close()
	if _, err := New("http://nope"); !errors.Is(err, ErrBadURL) {
		t.Fatalf("bad scheme: %v, want ErrBadURL", err)
	}
	if got := Redact("redis://user:pw@host:1/0"); strings.Contains(got, "pw") {
		t.Fatalf("Redact left the password: %s", got)
	}
}
