package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// syncBuffer is a bytes.Buffer that a command may write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pollUntil polls cond until it holds or the deadline passes.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay) // polling a condition with a deadline
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDispatcherCommand(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runDispatch(ctx, []string{"--redis-url", srv.URL(), "--prefix", "cli:", "--admin-listen", "127.0.0.1:0",
			"--consumer", "cli-1", "--lease-ttl", "600ms", "--log-format", "json", "--pprof-without-token"}, &logs)
	}()
	var admin string
	addrRE := regexp.MustCompile(`"admin":"([^"]+)"`)
	pollUntil(t, 10*time.Second, "the ready log line", func() bool {
		m := addrRE.FindStringSubmatch(logs.String())
		if m != nil {
			admin = m[1]
		}
		return m != nil
	})

	for _, to := range []string{"user:u1", "user:u1", "nobody"} {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: "cli:events", Values: []any{"type", "a.b", "tenant", "acme", "to", to, "data", "{}"}})
	}
	pollUntil(t, 10*time.Second, "2 feed entries and 1 dead letter", func() bool {
		return rdb.XLen(ctx, "cli:feed:{acme:u:u1}").Val() == 2 && rdb.XLen(ctx, "cli:dlq").Val() == 1
	})
	// The counters move just after the entries are acknowledged: poll.
	wants := []string{
		`herald_dispatcher_events_total{result="delivered"} 2`,
		`herald_dispatcher_events_total{result="dlq"} 1`,
		`herald_dispatcher_leases_held 1`,
		`go_goroutines`,
	}
	pollUntil(t, 10*time.Second, "the metrics to count the events", func() bool {
		code, body := httpGet(t, "http://"+admin+"/metrics")
		for _, want := range wants {
			if code != 200 || !strings.Contains(body, want) {
				return false
			}
		}
		return true
	})
	if code, body := httpGet(t, "http://"+admin+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := httpGet(t, "http://"+admin+"/debug/pprof/"); code != 200 {
		t.Errorf("/debug/pprof/: %d", code)
	}

	cancel() // what SIGTERM does through main's context
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dispatcher returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("dispatcher did not stop within 10s of cancellation")
	}
	if n := rdb.Exists(context.Background(), "cli:lease:cli:events").Val(); n != 0 {
		t.Error("lease not released on shutdown")
	}
	if !strings.Contains(logs.String(), "dispatcher stopped") {
		t.Errorf("no shutdown log line in:\n%s", logs.String())
	}
}

func TestDispatcherCommandFailsInOneLine(t *testing.T) {
	srv := redistest.Start(t)
	url := srv.URL()
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	err := runDispatch(t.Context(), []string{"--redis-url", url, "--admin-listen", "off"}, &logs)
	if err == nil || !strings.Contains(err.Error(), "unreachable") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want one line saying Redis is unreachable", err)
	}
	if code := run([]string{"dispatcher", "--redis-url", url, "--admin-listen", "off"}); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if code := run([]string{"dispatcher", "--lease-ttl", "soon"}); code != 2 {
		t.Fatalf("exit code %d for a bad flag, want 2", code)
	}
	if err := runDispatch(t.Context(), []string{"--batch-size", "-1"}, &logs); !errors.Is(err, errUsage) {
		t.Fatalf("negative batch size: %v", err)
	}
}

// TestDispatcherReplicaAckTimeoutPastReadTimeout: --replica-ack-timeout
// longer than the read_timeout of --redis-url is accepted, and a batch
// that no replica acknowledges fails with "not acknowledged", not with an
// i/o timeout; once a replica is there it is delivered, once.
func TestDispatcherReplicaAckTimeoutPastReadTimeout(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runDispatch(ctx, []string{"--redis-url", srv.URL() + "?read_timeout=200ms", "--prefix", "cli:",
			"--admin-listen", "off", "--consumer", "cli-1", "--log-format", "json",
			"--replica-acks", "1", "--replica-ack-timeout", "700ms", "--retry-max", "100ms"}, &logs)
	}()
	pollUntil(t, 10*time.Second, "the ready log line", func() bool { return strings.Contains(logs.String(), "dispatcher ready") })
	rdb.XAdd(ctx, &redis.XAddArgs{Stream: "cli:events", Values: []any{"type", "a.b", "tenant", "acme", "to", "user:u1", "data", "{}"}})
	pollUntil(t, 10*time.Second, "a batch that failed for want of a replica", func() bool {
		return strings.Contains(logs.String(), "not acknowledged by enough replicas")
	})
	if strings.Contains(logs.String(), "i/o timeout") {
		t.Fatalf("an i/o timeout in the logs:\n%s", logs.String())
	}
	redistest.StartReplica(t, srv)
	pollUntil(t, 10*time.Second, "the event acknowledged", func() bool {
		p, err := rdb.XPending(ctx, "cli:events", dispatcher.DefaultGroup).Result()
		return err == nil && p.Count == 0
	})
	if n := rdb.XLen(ctx, "cli:feed:{acme:u:u1}").Val(); n != 1 {
		t.Fatalf("%d feed entries, want 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dispatcher returned %v", err)
	}
	for _, bad := range []string{"0", "-1s"} {
		err := runDispatch(t.Context(), []string{"--replica-ack-timeout", bad}, &logs)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--replica-ack-timeout") {
			t.Fatalf("--replica-ack-timeout %s: %v, want a usage error naming the flag", bad, err)
		}
	}
}

func TestAdminListenerTakenPortFails(t *testing.T) {
	first, err := startAdmin("127.0.0.1:0", serverOptions{}, newRegistry(), nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close(context.Background())
	if _, err := startAdmin(first.Addr(), serverOptions{}, newRegistry(), nil, discardLogger()); err == nil {
		t.Fatal("a second listener on a taken port started")
	}
	unhealthy, err := startAdmin("127.0.0.1:0", serverOptions{}, newRegistry(), func(context.Context) error { return errors.New("redis down") }, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer unhealthy.Close(context.Background())
	if code, body := httpGet(t, "http://"+unhealthy.Addr()+"/healthz"); code != 503 || !strings.Contains(body, "redis down") {
		t.Fatalf("/healthz of an unhealthy process: %d %q", code, body)
	}
	off, err := startAdmin("off", serverOptions{}, newRegistry(), nil, discardLogger())
	if off != nil || err != nil || off.Addr() != "" || off.Close(context.Background()) != nil {
		t.Fatal("--admin-listen off must give a nil, inert server")
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
