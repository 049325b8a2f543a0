package centrifugo

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	logName = "centrifugo.log"
	// killAfter is how much longer than its own shutdown timeout Stop gives
	// centrifugo before SIGKILL.
	killAfter = 5 * time.Second
	tailBytes = 4 << 10
)

// process is one run of centrifugo, the leader of its own process group.
type process struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // what Wait returned; read only after done is closed
}

// startProcess runs bin with args in dir, its output appended to the log
// file there, without the caller's CENTRIFUGO_* variables (Centrifugo reads
// its configuration from them too). A goroutine reaps the process.
func startProcess(bin string, args []string, dir string) (*process, error) {
	out, err := os.OpenFile(filepath.Join(dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open centrifugo log: %w", err)
	}
	defer out.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = withoutEnv(os.Environ(), "CENTRIFUGO_")
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

// terminate sends SIGTERM, waits up to grace, then kills the whole group.
// It returns ErrDied if the process was gone already, an error if it exited
// with a failure status, ErrKilled if it had to be killed, and ErrLeaked if
// anything of the group outlived centrifugo.
func (p *process) terminate(grace time.Duration) error {
	var err error
	if p.exited() {
		err = fmt.Errorf("centrifugo %d: %w: %v", p.pid, ErrDied, p.err)
	} else {
		err = p.sigterm(grace)
	}
	// The group id is the pid of the leader, which has been reaped: any
	// answer but ESRCH means a child it forked is still alive.
	if serr := syscall.Kill(-p.pid, 0); serr != syscall.ESRCH {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		return fmt.Errorf("process group %d: %w", p.pid, ErrLeaked)
	}
	return err
}

// sigterm asks centrifugo to shut down and waits until it is reaped, killing
// the group after grace.
func (p *process) sigterm(grace time.Duration) error {
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("send SIGTERM to centrifugo %d: %w", p.pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("centrifugo %d after SIGTERM: %w", p.pid, p.err)
		}
		return nil
	case <-timer.C:
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("centrifugo %d still running %v after SIGTERM: %w", p.pid, grace, ErrKilled)
	}
}

// kill ends the process group at once and waits until it is reaped.
func (p *process) kill() {
	if !p.exited() {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
	<-p.done
}

// logTail returns the end of the log file in dir, written since offset
// from, formatted to be appended to an error message.
func logTail(dir string, from int64) string {
	path := filepath.Join(dir, logName)
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || from >= fi.Size() {
		return ""
	}
	from = max(from, fi.Size()-tailBytes)
	b, err := io.ReadAll(io.NewSectionReader(f, from, fi.Size()-from))
	if err != nil {
		return ""
	}
	return "\n--- last lines of " + path + " ---\n" + lastLines(strings.TrimRight(string(b), "\n"), 20)
}

// logSize returns the size of the log file in dir, 0 if there is none.
func logSize(dir string) int64 {
	fi, err := os.Stat(filepath.Join(dir, logName))
	if err != nil {
		return 0
	}
	return fi.Size()
}
