package centrifugo

import "syscall"

// sysProcAttr puts centrifugo in its own process group, so Stop can take
// down anything it forked, and asks the kernel to kill it if the load tool
// dies without calling Stop.
//
// Pdeathsig fires when the OS thread that started the child exits, not the
// whole process; the Go runtime ends a thread only when a goroutine locked
// to it with runtime.LockOSThread exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
