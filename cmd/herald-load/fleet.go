package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchSpawn makes the command of one worker process: this binary again,
// as `herald-load bench worker <args>`. Tests replace it to re-run the test
// binary.
var benchSpawn = func(args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for bench workers: %w", err)
	}
	return exec.Command(exe, append([]string{"bench", "worker"}, args...)...), nil
}

// errWorkerDied is returned when a worker process ends before it is told to.
var errWorkerDied = errors.New("bench worker exited early")

// fleet is the coordinator's handle on its worker processes.
type fleet struct {
	procs []*workerProc
}

// workerProc is one worker process and the latest it reported.
type workerProc struct {
	id     int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	done   chan struct{} // closed when its stdout ends

	mu     sync.Mutex
	last   workerMsg
	rounds map[int64][2]int64 // round -> count, max latency µs
	final  *workerMsg
	err    error // a line that could not be read
}

// startFleet starts one worker per slice of o's clients. Worker k owns
// clients [k*N/W, (k+1)*N/W) and dials from the k-th source address.
func startFleet(o *benchFlags, secret string) (*fleet, error) {
	f := &fleet{}
	addr, err := sourceAddrs(o.sourceBase, o.workers)
	if err != nil {
		return nil, err
	}
	for k := range o.workers {
		first, end := k*o.clients/o.workers, (k+1)*o.clients/o.workers
		args := []string{"--id", strconv.Itoa(k), "--mode", o.mode, "--edges", o.edges,
			"--first", strconv.Itoa(first), "--count", strconv.Itoa(end - first), "--users", strconv.Itoa(o.clients),
			"--local-addr", addr[k], "--tenant", o.tenant, "--run", o.run, "--rounds", strconv.Itoa(o.roundCount()),
			"--connect-concurrency", strconv.Itoa(o.concurrency), "--no-ack=" + strconv.FormatBool(o.noAck), "--ack-every", o.ackEvery.String(),
			"--timeout", (o.timeout + 30*time.Second).String()}
		if o.profileDir != "" {
			args = append(args, "--cpu-profile", workerProfile(o, k))
		}
		p, err := startWorker(k, args, secret)
		if err != nil {
			f.kill()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	return f, nil
}

// workerProfile is the CPU profile file of worker k.
func workerProfile(o *benchFlags, k int) string {
	return filepath.Join(o.profileDir, fmt.Sprintf("worker%d-%s.pprof", k, o.scenario()))
}

// sourceAddrs returns n consecutive addresses from base ("" for all when
// base is "any").
func sourceAddrs(base string, n int) ([]string, error) {
	out := make([]string, n)
	if base == "any" {
		return out, nil
	}
	a, err := netip.ParseAddr(base)
	if err != nil {
		return nil, fmt.Errorf("%w: --source-base %q: %v", errUsage, base, err)
	}
	for i := range out {
		if !a.IsValid() || !a.IsLoopback() {
			return nil, fmt.Errorf("%w: --source-base %s: %d workers would leave 127.0.0.0/8", errUsage, base, n)
		}
		out[i] = a.String()
		a = a.Next()
	}
	return out, nil
}

func startWorker(id int, args []string, secret string) (*workerProc, error) {
	cmd, err := benchSpawn(args)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, secretEnv+"="+secret)
	p := &workerProc{id: id, cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{}), rounds: make(map[int64][2]int64)}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bench worker %d: %w", id, err)
	}
	go p.read(stdout)
	return p, nil
}

// read takes the worker's lines until its stdout ends.
func (p *workerProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // the final line holds per-user counts
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue // not a report (a test binary's own chatter)
		}
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.mu.Lock()
			p.err = fmt.Errorf("bench worker %d wrote %.80q: %w", p.id, sc.Bytes(), err)
			p.mu.Unlock()
			continue
		}
		p.mu.Lock()
		for _, r := range m.Rounds {
			p.rounds[r[0]] = [2]int64{r[1], r[2]}
		}
		if m.Kind == "final" {
			p.final = &m
		}
		p.last = m
		p.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// totals adds up the workers' latest counters.
func (f *fleet) totals() workerMsg {
	var t workerMsg
	t.Closes = make(map[string]int64)
	for _, p := range f.procs {
		p.mu.Lock()
		m := p.last
		p.mu.Unlock()
		t.Connected += m.Connected
		t.Welcomed += m.Welcomed
		t.Failures += m.Failures
		t.Delivered += m.Delivered
		t.Foreign += m.Foreign
		t.Dups += m.Dups
		for k, v := range m.Closes {
			t.Closes[k] += v
		}
		for _, e := range m.Errors {
			if len(t.Errors) < 8 && !slices.Contains(t.Errors, e) {
				t.Errors = append(t.Errors, e)
			}
		}
	}
	return t
}

// round is how many clients have round r and the latest receipt (µs after
// publish) among them.
func (f *fleet) round(r int) (count, maxUS int64) {
	for _, p := range f.procs {
		p.mu.Lock()
		c := p.rounds[int64(r)]
		p.mu.Unlock()
		count += c[0]
		maxUS = max(maxUS, c[1])
	}
	return count, maxUS
}

// check returns an error when a worker has ended or written garbage.
func (f *fleet) check() error {
	for _, p := range f.procs {
		p.mu.Lock()
		err, final := p.err, p.final
		p.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-p.done:
			if final == nil {
				return fmt.Errorf("%w: worker %d: %s", errWorkerDied, p.id, p.stderr.String())
			}
		default:
		}
	}
	return nil
}

// stop tells every worker to stop, waits up to grace for their final lines
// and exits, kills the ones still running, and returns the final lines.
func (f *fleet) stop(grace time.Duration) ([]workerMsg, error) {
	for _, p := range f.procs {
		io.WriteString(p.stdin, "stop\n")
		p.stdin.Close()
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	var finals []workerMsg
	var errs []error
	for _, p := range f.procs {
		select {
		case <-p.done:
		case <-deadline.C:
			p.cmd.Process.Kill()
			<-p.done
		}
		werr := p.cmd.Wait()
		p.mu.Lock()
		final := p.final
		p.mu.Unlock()
		if final == nil {
			errs = append(errs, fmt.Errorf("%w: worker %d gave no final report (%v): %s", errWorkerDied, p.id, werr, p.stderr.String()))
			continue
		}
		finals = append(finals, *final)
	}
	return finals, errors.Join(errs...)
}

// kill ends every worker at once (start failed part way).
func (f *fleet) kill() {
	for _, p := range f.procs {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
	}
}

// waitFor polls cond every 50 ms until it holds (true), the deadline passes
// or ctx ends (false), or a worker fails (its error). tick runs each poll.
func (f *fleet) waitFor(ctx context.Context, deadline time.Time, cond func() bool, tick func()) (bool, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if tick != nil {
			tick()
		}
		if err := f.check(); err != nil {
			return false, err
		}
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-t.C:
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
