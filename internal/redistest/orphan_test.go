package redistest_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/redistest"
)

const orphanEnv = "REDISTEST_ORPHAN_DIR"

// TestServerDiesWithItsParent checks that a test binary which dies without
// its cleanups (a -timeout panic, a SIGKILL) leaves no redis-server behind.
func TestServerDiesWithItsParent(t *testing.T) {
	if dir := os.Getenv(orphanEnv); dir != "" {
		srv, err := redistest.Launch(t.Context(), redistest.Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("pid=%d\n", srv.PID())
		os.Exit(0) // no Close: as if the test binary crashed
	}
	t.Parallel()

	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithItsParent$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	pid := 0
	for line := range strings.Lines(string(out)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "pid="); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid <= 0 {
		t.Fatalf("helper printed no pid:\n%s", out)
	}

	deadline := time.Now().Add(5 * time.Second)
	for processExists(pid) {
		if time.Now().After(deadline) {
			_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
			t.Fatalf("redis-server %d outlived the process that started it", pid)
		}
		time.Sleep(10 * time.Millisecond) // polling the process table with a deadline
	}
}

// processExists reports whether pid is alive (a zombie counts as gone).
func processExists(pid int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if state, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			return !strings.Contains(state, "Z")
		}
	}
	return false
}
