//go:build unix && !linux

package redistest

import (
	"syscall"
	"time"
)

// sysProcAttr puts redis-server in its own process group, so Kill takes
// down anything it forked.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitStopped cannot observe the process state without /proc: SIGSTOP is
// trusted to land.
func waitStopped(int, time.Duration) error { return nil }
