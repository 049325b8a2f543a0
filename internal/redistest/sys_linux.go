package redistest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// sysProcAttr puts redis-server in its own process group, so Kill takes
// down anything it forked, and asks the kernel to kill it if the test binary
// dies without running its cleanups (a -timeout panic, a SIGKILL).
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// whole process. The Go runtime only ends a thread when a goroutine exits
// while locked to it with runtime.LockOSThread; tests that do that could see
// their servers killed early.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// waitStopped polls /proc until pid is in the stopped state, so that when
// Pause returns the server really answers nothing.
func waitStopped(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		state, err := procState(pid)
		if err != nil || state == 'T' || state == 't' {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server %d not stopped after %v (state %c)", pid, timeout, state)
		}
		time.Sleep(time.Millisecond) // polling a kernel state with a deadline, nothing to wait on
	}
}

// procState returns the state letter of /proc/<pid>/stat ("R", "S", "T"...).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read state of redis-server %d: %w", pid, err)
	}
	// The command name in parentheses may contain anything; the state follows
	// the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("read state of redis-server %d: malformed stat %q", pid, b)
	}
	return b[i+2], nil
}
