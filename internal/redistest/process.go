package redistest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// process is one run of redis-server, the leader of its own process group.
type process struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // what Wait returned; read only after done is closed
}

// startProcess starts bin in dir, with stdout and stderr appended to the
// output file in dir. A goroutine reaps the process and closes done.
func startProcess(bin string, args []string, dir string) (*process, error) {
	out, err := os.OpenFile(filepath.Join(dir, outName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open redis-server output file: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go p.wait()
	return p, nil
}

func (p *process) wait() {
	p.err = p.cmd.Wait()
	close(p.done)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the process and everything it forked (an AOF
// rewrite child). It does nothing once the process has been reaped, so a
// recycled pid is never signalled.
func (p *process) signalGroup(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("send %v to redis-server group %d: %w", sig, p.pid, err)
	}
	return nil
}

// kill sends SIGKILL to the group and waits until the process is reaped.
func (p *process) kill() error {
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// terminate asks redis-server to shut down (SIGTERM, which it handles like
// SHUTDOWN), waits up to grace, and kills the group if it is still running.
func (p *process) terminate(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("send SIGTERM to redis-server %d: %w", p.pid, err)
	}
	_ = p.signalGroup(syscall.SIGCONT) // a paused server must wake up to see SIGTERM
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		if err := p.kill(); err != nil {
			return err
		}
		return fmt.Errorf("redis-server %d did not exit within %v of SIGTERM; killed it", p.pid, grace)
	}
}
