package redistest_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/heraldrt/herald/internal/redistest"
)

func TestStartAnswersWithIsolatedDefaults(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()

	if got, err := rdb.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING = %q, %v", got, err)
	}
	wantAddr := "127.0.0.1:" + strconv.Itoa(srv.Port())
	if srv.Port() <= 0 || srv.Addr() != wantAddr || srv.URL() != "redis://"+wantAddr+"/0" {
		t.Errorf("Port %d, Addr %q, URL %q do not agree", srv.Port(), srv.Addr(), srv.URL())
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", srv.PID())); srv.PID() <= 0 || err != nil {
		t.Errorf("PID %d is not a live process: %v", srv.PID(), err)
	}
	want := map[string]string{
		"bind":           "127.0.0.1",
		"port":           strconv.Itoa(srv.Port()),
		"dir":            srv.Dir(),
		"save":           "",
		"appendonly":     "no",
		"protected-mode": "no",
		"daemonize":      "no",
		"logfile":        filepath.Join(srv.Dir(), "redis.log"),
	}
	for name, value := range want {
		got, err := rdb.ConfigGet(ctx, name).Result()
		if err != nil || got[name] != value {
			t.Errorf("CONFIG GET %s = %q, %v; want %q", name, got[name], err, value)
		}
	}
	if fi, err := os.Stat(filepath.Join(srv.Dir(), "redis.log")); err != nil || fi.Size() == 0 {
		t.Errorf("redis log in the data directory: %v", err)
	}
}

func TestServersAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Port() == b.Port() || a.PID() == b.PID() || a.Dir() == b.Dir() {
		t.Fatalf("servers share port, pid or dir: %s/%d/%s and %s/%d/%s",
			a.Addr(), a.PID(), a.Dir(), b.Addr(), b.PID(), b.Dir())
	}
	ctx := t.Context()
	if err := a.Client(t).Set(ctx, "k", "a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client(t).Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET k on the other server = %v, want redis.Nil", err)
	}
}

func TestWithArgsOverrideDefaults(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.WithArgs("--maxmemory", "12345678", "--save", "3600 1"))
	got, err := srv.Client(t).ConfigGet(t.Context(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if got["maxmemory"] != "12345678" || got["save"] != "3600 1" {
		t.Fatalf("maxmemory %q, save %q; want the WithArgs values", got["maxmemory"], got["save"])
	}
}

func TestFixedPort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port

	// Taken: a fixed port is not retried, and the error shows redis' log.
	_, err = redistest.Launch(t.Context(), redistest.Config{Port: port, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("Launch on a taken port = %v, want an error with the bind failure from the log", err)
	}

	l.Close()
	srv := redistest.Start(t, redistest.WithPort(port))
	if srv.Port() != port {
		t.Fatalf("Port() = %d, want %d", srv.Port(), port)
	}
	if err := srv.Client(t).Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBadArgumentShowsRedisOutput(t *testing.T) {
	t.Parallel()
	_, err := redistest.Launch(t.Context(), redistest.Config{Args: []string{"--no-such-directive", "1"}})
	if err == nil || !strings.Contains(err.Error(), "Bad directive") || !strings.Contains(err.Error(), "exited before answering") {
		t.Fatalf("Launch with a bad directive = %v, want redis-server's complaint", err)
	}
}

func TestMissingBinary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  redistest.Config
	}{
		{"empty search dirs", redistest.Config{SearchDirs: []string{t.TempDir()}}},
		{"no search dirs", redistest.Config{SearchDirs: []string{}}},
		{"explicit binary", redistest.Config{Binary: filepath.Join(t.TempDir(), "redis-server")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redistest.Launch(t.Context(), tt.cfg)
			if !errors.Is(err, redistest.ErrNotFound) || !strings.Contains(err.Error(), "go tool task setup") {
				t.Fatalf("Launch = %v, want ErrNotFound naming `go tool task setup`", err)
			}
		})
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartFailsNamingSetupWhenBinaryMissing(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec.TB = t
		redistest.Start(rec, func(c *redistest.Config) { c.SearchDirs = []string{} })
	}()
	<-done
	if !strings.Contains(rec.msg, "go tool task setup") {
		t.Fatalf("Start without redis-server: Fatalf(%q), want a message naming `go tool task setup`", rec.msg)
	}
}
