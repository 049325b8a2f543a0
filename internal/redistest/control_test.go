package redistest_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestKillThenRestartWithAOFKeepsData(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithAOF())
	rdb := srv.Client(t)
	ctx := t.Context()
	if err := rdb.Set(ctx, "order:1", "placed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	port, oldPID := srv.Port(), srv.PID()

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if srv.PID() != 0 {
		t.Errorf("PID after Kill = %d, want 0", srv.PID())
	}
	if conn, err := net.Dial("tcp", srv.Addr()); err == nil {
		conn.Close()
		t.Fatal("the port still accepts connections after Kill")
	}

	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if srv.Port() != port || srv.PID() == oldPID || srv.PID() == 0 {
		t.Errorf("after Restart: port %d (was %d), pid %d (was %d)", srv.Port(), port, srv.PID(), oldPID)
	}
	if got, err := rdb.Get(ctx, "order:1").Result(); err != nil || got != "placed" {
		t.Fatalf("GET after Kill and Restart = %q, %v; want the AOF to keep it", got, err)
	}
}

func TestStopThenRestartWithoutAOFStartsEmpty(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after a restart without AOF = %d, %v; want 0", n, err)
	}
}

func TestPauseTimesClientsOutAndResumeRecovers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{
		Addr:         srv.Addr(),
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,
	})
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	err := rdb.Ping(ctx).Err()
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("PING on a paused server = %v, want a timeout", err)
	}

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Resume = %v", err)
	}
}

func TestStopWakesAPausedServer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatalf("Stop of a paused server: %v", err)
	}
}

func TestControlErrors(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := t.Context()
	if err := srv.Restart(ctx); !errors.Is(err, redistest.ErrRunning) {
		t.Errorf("Restart while running = %v, want ErrRunning", err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"Kill": srv.Kill, "Stop": srv.Stop, "Pause": srv.Pause, "Resume": srv.Resume,
	} {
		if err := op(); !errors.Is(err, redistest.ErrNotRunning) {
			t.Errorf("%s after Kill = %v, want ErrNotRunning", name, err)
		}
	}
}

func TestCloseIsIdempotentAndRemovesItsOwnDir(t *testing.T) {
	t.Parallel()
	srv, err := redistest.Launch(t.Context(), redistest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	for range 2 {
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, err := os.Stat(srv.Dir()); !os.IsNotExist(err) {
		t.Errorf("data directory %s after Close: %v, want it removed", srv.Dir(), err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !os.IsNotExist(err) {
		t.Errorf("process %d still exists after Close", pid)
	}
	if err := srv.Restart(t.Context()); !errors.Is(err, redistest.ErrClosed) {
		t.Errorf("Restart after Close = %v, want ErrClosed", err)
	}
	if err := srv.Kill(); !errors.Is(err, redistest.ErrClosed) {
		t.Errorf("Kill after Close = %v, want ErrClosed", err)
	}
}
