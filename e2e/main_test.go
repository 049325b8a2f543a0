package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/redis/go-redis/v9"
)

// heraldBin is the herald binary TestMain built for this run.
var heraldBin string

func TestMain(m *testing.M) {
	flag.Parse()
	// The publisher's client logs every failed dial while Redis is down on
	// purpose; the scenarios report what matters.
	redis.SetLogger(quietLogger{})
	dir, err := os.MkdirTemp("", "herald-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	heraldBin, err = buildHerald(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := noChildren(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	if code == 0 {
		if err := leakcheck.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// quietLogger discards go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// buildHerald builds cmd/herald into dir, without -race: the processes under
// test are the release binary, the race detector watches the test process.
func buildHerald(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "herald")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/heraldrt/herald/cmd/herald")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build herald: %w\n%s", err, out)
	}
	return bin, nil
}

// errChildren is returned by noChildren when processes outlived the tests.
var errChildren = errors.New("child processes outlived the tests")

// noChildren checks that the test process has no child process left:
// every herald and redis-server must have been killed and reaped.
func noChildren() error {
	me := os.Getpid()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil // not Linux: nothing to check with
	}
	var left []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold anything, so parse
		// after the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me {
			left = append(left, fmt.Sprintf("%d %s (state %s)", pid, b[bytes.IndexByte(b, '(')+1:i], f[0]))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("%w: %s", errChildren, strings.Join(left, ", "))
	}
	return nil
}
