package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long a process may take to log its ready line.
	readyTimeout = 30 * time.Second
	// termTimeout bounds a graceful stop after SIGTERM before SIGKILL.
	termTimeout = 40 * time.Second
	// tailLines is how much of a process's log a failing test prints.
	tailLines = 40
)

// errNotReady says a process exited or timed out before its ready line.
var errNotReady = errors.New("process not ready")

// proc is one herald process in its own process group, its output in a
// log file under the test's temporary directory.
type proc struct {
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	log  *procLog
	done chan struct{} // closed once the process exited and was reaped
	err  error         // Wait's result, read after done
}

// startProc runs `herald args...` with env added to the environment (any
// HERALD_* variable of the test's own environment is dropped) and waits
// for the JSON log line whose msg is readyMsg, returning its attributes.
// The process is killed at the test's cleanup, and a failed test prints
// the end of its log.
func startProc(t *testing.T, name, readyMsg string, args, env []string) (*proc, map[string]any) {
	t.Helper()
	lg, err := openProcLog(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, args: args, env: env, log: lg}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- last lines of %s (%s) ---\n%s", p.name, p.log.path, p.log.tail(tailLines))
		}
		p.log.f.Close()
	})
	ready, err := p.start(readyMsg)
	if err != nil {
		t.Fatalf("start %s: %v\n%s", name, err, p.log.tail(tailLines))
	}
	return p, ready
}

// restart starts the process again with the same arguments and
// environment after it exited, and waits for its ready line.
func (p *proc) restart(t *testing.T, readyMsg string) map[string]any {
	t.Helper()
	select {
	case <-p.done:
	default:
		t.Fatalf("restart %s: still running", p.name)
	}
	ready, err := p.start(readyMsg)
	if err != nil {
		t.Fatalf("restart %s: %v\n%s", p.name, err, p.log.tail(tailLines))
	}
	return ready
}

func (p *proc) start(readyMsg string) (map[string]any, error) {
	lg := p.log
	lg.expect(readyMsg)
	cmd := exec.Command(heraldBin, p.args...)
	cmd.Env = append(cleanEnv(), p.env...)
	cmd.Stdout, cmd.Stderr = lg, lg
	// Own process group (a kill takes everything it forked); the kernel
	// kills it if the test binary dies without its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", heraldBin, err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case attrs := <-lg.readyChan():
		return attrs, nil
	case <-p.done:
		return nil, fmt.Errorf("%w: %s exited: %v", errNotReady, p.name, p.err)
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("%w: %s logged no %q within %v", errNotReady, p.name, readyMsg, readyTimeout)
	}
}

// cleanEnv is the test's environment without HERALD_* variables, so that
// a developer's settings cannot change what the suite runs.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return env
}

// pid is the process id of the current run.
func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the process group and waits until it is reaped.
// It does nothing once the process is gone (a recycled pid is never hit).
func (p *proc) kill() {
	if p.cmd == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits for a clean exit; a process that does not
// exit within termTimeout is killed and reported.
func (p *proc) term() error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(p.pid(), syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", p.name, err)
	}
	timer := time.NewTimer(termTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s after SIGTERM: %w", p.name, p.err)
		}
		return nil
	case <-timer.C:
		p.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed it", p.name, termTimeout)
	}
}

// procLog is a process's stdout and stderr: written to a file, scanned
// line by line for the ready line, and its last lines kept for reports.
type procLog struct {
	path string
	f    *os.File

	mu       sync.Mutex
	readyMsg string
	ready    chan map[string]any // receives the ready line's attributes once per run
	found    bool
	partial  []byte
	lines    []string // the last tailLines lines
}

func openProcLog(dir, name string) (*procLog, error) {
	path := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	return &procLog{path: path, f: f}, nil
}

// expect arms the log for a new run: the next line whose msg is msg is
// sent on l.ready.
func (l *procLog) expect(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readyMsg, l.found, l.partial = msg, false, nil
	l.ready = make(chan map[string]any, 1)
}

// Write is called by exec's copying goroutine.
func (l *procLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.f.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.line(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *procLog) line(s string) {
	if len(l.lines) == tailLines {
		l.lines = l.lines[1:]
	}
	l.lines = append(l.lines, s)
	if l.found {
		return
	}
	var attrs map[string]any
	if json.Unmarshal([]byte(s), &attrs) == nil && attrs["msg"] == l.readyMsg {
		l.found = true
		l.ready <- attrs
	}
}

func (l *procLog) readyChan() chan map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// tail returns the last n lines written.
func (l *procLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stopProcess freezes p's process group with SIGSTOP and waits until the
// kernel shows the process stopped.
func stopProcess(p *proc) error {
	if err := syscall.Kill(-p.pid(), syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %s: %w", p.name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
		if err != nil {
			return fmt.Errorf("state of %s: %w", p.name, err)
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not stopped 5s after SIGSTOP", p.name)
		}
		time.Sleep(time.Millisecond) // polling a kernel state with a deadline
	}
}
