package dispatcher_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// helperEnv carries the Redis address to the dispatcher child process.
const helperEnv = "HERALD_TEST_DISPATCHER_REDIS"

// TestHelperDispatcherProcess is not a test: TestCrashedDispatcherLosesNothing
// runs the test binary again with helperEnv set, and then this runs a
// dispatcher with small batches until it is killed.
func TestHelperDispatcherProcess(t *testing.T) {
	addr := os.Getenv(helperEnv)
	if addr == "" {
		return // not the child
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	d, err := dispatcher.New(rdb, dispatcher.Config{
		Consumer: "child", BatchSize: 5, LeaseTTL: 500 * time.Millisecond,
		Block: 100 * time.Millisecond, Append: feedRetention,
	})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		for len(d.Streams()) == 0 {
			time.Sleep(time.Millisecond) // polling until the lease is held
		}
		fmt.Println("ready")
	}()
	if err := d.Run(ctx); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}

func TestCrashedDispatcherLosesNothing(t *testing.T) {
	srv, rdb := newServer(t)
	space := keys.Space{}
	child := startChild(t, srv.Addr())

	const n = 20000
	envs := make([]events.Envelope, n)
	want := make([]string, n)
	for i := range envs {
		envs[i] = numbered("acme", events.ToUser("u1"), i+1)
		want[i] = string(envs[i].Data)
	}
	publish(t, rdb, space, 0, envs)
	f := keys.UserFeed("acme", "u1")
	waitFor(t, 30*time.Second, "the child to append 1000 events", func() bool { return feedSeq(t, rdb, space, f) >= 1000 })
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	at := feedSeq(t, rdb, space, f)
	pending := rdb.XInfoGroups(context.Background(), space.Events()).Val()[0].Pending
	t.Logf("killed the child at seq %d with %d entries pending", at, pending)
	if at >= n {
		t.Fatal("the child finished before it was killed; the test proves nothing")
	}

	d := startDispatcher(t, rdb, testConfig(t, space, "survivor"))
	waitFor(t, 30*time.Second, "every event in the feed", func() bool { return feedSeq(t, rdb, space, f) >= n })
	waitFor(t, 10*time.Second, "the group to drain", func() bool { return drained(t, rdb, space.IngestStreams(0)) })
	checkSequence(t, readFeed(t, rdb, space, f), want)
	if pending > 0 && metricValue(t, d.Dispatcher, "herald_dispatcher_reclaimed_total", "") == 0 {
		t.Error("the survivor claimed nothing from the child")
	}
}

// startChild runs TestHelperDispatcherProcess in a new process and waits
// until it prints "ready" (it holds the lease).
func startChild(t *testing.T, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperDispatcherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+addr)
	cmd.Stderr = t.Output()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- ""
				return
			}
			fmt.Fprintln(t.Output(), "child:", sc.Text())
		}
		ready <- "child exited before it was ready"
	}()
	select {
	case msg := <-ready:
		if msg != "" {
			t.Fatal(msg)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("child not ready after 20s")
	}
	return cmd
}

// A dispatcher frozen (SIGSTOP) for longer than its lease loses its
// streams to another; when it wakes up nothing is lost or duplicated. Its
// stale reads, if any, are delivered late (out of order); if there were
// none, the feed is in publish order.
func TestFrozenDispatcherLosesNothing(t *testing.T) {
	srv, rdb := newServer(t)
	space := keys.Space{}
	child := startChild(t, srv.Addr())

	const n = 20000
	envs := make([]events.Envelope, n)
	for i := range envs {
		envs[i] = numbered("acme", events.ToUser("u1"), i+1)
	}
	publish(t, rdb, space, 0, envs)
	f := keys.UserFeed("acme", "u1")
	waitFor(t, 30*time.Second, "the child to append 1000 events", func() bool { return feedSeq(t, rdb, space, f) >= 1000 })
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := feedSeq(t, rdb, space, f)
	cfg := testConfig(t, space, "survivor")
	cfg.ClaimInterval, cfg.ClaimIdle = 100*time.Millisecond, 300*time.Millisecond
	d := startDispatcher(t, rdb, cfg)
	waitFor(t, 10*time.Second, "the survivor to take over", func() bool { return feedSeq(t, rdb, space, f) > frozenAt+100 })
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the group to drain", func() bool {
		return feedSeq(t, rdb, space, f) >= n && drained(t, rdb, space.IngestStreams(0))
	})

	got := readFeed(t, rdb, space, f)
	seen := make(map[string]bool, n)
	inOrder := true
	for i, e := range got {
		if seen[e.Data] {
			t.Fatalf("%s delivered twice", e.Data)
		}
		seen[e.Data] = true
		inOrder = inOrder && e.Data == string(envs[i].Data)
	}
	if len(got) != n {
		t.Fatalf("%d of %d events delivered", len(got), n)
	}
	late := metricValue(t, d.Dispatcher, "herald_dispatcher_late_entries_total", "")
	t.Logf("froze the child at seq %d; %v late entries", frozenAt, late)
	if late == 0 && !inOrder {
		t.Fatal("the feed is out of order without late entries")
	}
}

// Redis crashing (with AOF, so acknowledged writes survive) and coming
// back, or freezing for longer than the lease, mid-stream: the dispatcher
// retries, takes its stream back and delivers every event once, in order.
func TestRedisFailuresLoseNothing(t *testing.T) {
	for _, c := range []struct {
		name    string
		disrupt func(t *testing.T, srv *redistest.Server)
	}{
		{"crash and restart", func(t *testing.T, srv *redistest.Server) {
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := srv.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
		{"freeze longer than the lease", func(t *testing.T, srv *redistest.Server) {
			if err := srv.Pause(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1500 * time.Millisecond) // the failure being tested: Redis frozen for 2.5 leases
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.WithAOF())
			rdb := srv.Client(t)
			space := keys.Space{}
			const n = 20000
			envs := make([]events.Envelope, n)
			want := make([]string, n)
			for i := range envs {
				envs[i] = numbered("acme", events.ToUser("u1"), i+1)
				want[i] = string(envs[i].Data)
			}
			publish(t, rdb, space, 0, envs)
			cfg := testConfig(t, space, "c1")
			cfg.BatchSize = 50
			startDispatcher(t, rdb, cfg)
			f := keys.UserFeed("acme", "u1")
			waitFor(t, 30*time.Second, "1000 events in the feed", func() bool { return feedSeq(t, rdb, space, f) >= 1000 })
			c.disrupt(t, srv)
			waitFor(t, 60*time.Second, "the group to drain", func() bool {
				return feedSeq(t, rdb, space, f) >= n && drained(t, rdb, space.IngestStreams(0))
			})
			checkSequence(t, readFeed(t, rdb, space, f), want)
		})
	}
}
