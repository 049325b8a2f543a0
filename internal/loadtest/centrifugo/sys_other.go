//go:build unix && !linux

package centrifugo

import "syscall"

// sysProcAttr puts centrifugo in its own process group, so Stop can take
// down anything it forked.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
