package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// spawnWorker makes the command of one worker process: this binary again,
// as `herald-load worker <args>`. Tests replace it to re-run the test
// binary.
var spawnWorker = func(args []string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable for workers: %w", err)
	}
	return exec.Command(exe, append([]string{"worker"}, args...)...), nil
}

// errWorkerDied is returned when a worker process ends before it is told to.
var errWorkerDied = errors.New("worker exited early")

// fleetConfig describes a group of workers that hold clients
// u<first>..u<first+count-1> of a run of `users` clients.
type fleetConfig struct {
	name        string // in profile file names
	target      Target
	first       int
	count       int
	users       int
	workers     int
	sourceBase  string // first worker's source address; "any" for the system's choice
	perAddr     int    // clients that dial from one source address
	concurrency int
	acks        ackMode
	timeout     time.Duration // the workers' hard stop
	profileDir  string        // worker CPU profiles; "" for none
	traceDir    string        // worker frame traces; "" for none
}

// fleet is the coordinator's handle on its worker processes.
type fleet struct {
	cfg   fleetConfig
	procs []*workerProc

	mu  sync.Mutex
	seq int64
}

// workerProc is one worker process and the latest it reported.
type workerProc struct {
	id          int
	first, last int // its users: [first, last)
	cmd         *exec.Cmd
	stdin       io.WriteCloser
	stderr      *tailBuffer
	done        chan struct{} // closed when its stdout ends

	mu        sync.Mutex
	latest    workerMsg
	rounds    map[int64][2]int64 // round -> count, max latency µs (current phase)
	replies   map[int64]workerMsg
	phaseSeq  int64 // the phase command whose reply clears rounds
	final     *workerMsg
	err       error // a line that could not be read
	killed    bool  // the coordinator killed it on purpose
	inputDone bool
}

// startFleet starts the workers. Worker k owns an equal share of the
// clients and dials from the k-th source address.
func startFleet(cfg fleetConfig) (*fleet, error) {
	f := &fleet{cfg: cfg}
	addr := cfg.sourceBase
	for k := range cfg.workers {
		first, end := cfg.first+k*cfg.count/cfg.workers, cfg.first+(k+1)*cfg.count/cfg.workers
		n := cfg.addrsFor(end - first)
		local := addr
		if local == "any" {
			local = ""
		} else if _, err := sourceAddrs(addr, n); err != nil {
			f.kill()
			return nil, err
		}
		addr = nextAddr(addr, n)
		args := []string{"--id", strconv.Itoa(k), "--target", cfg.target.Name(),
			"--first", strconv.Itoa(first), "--count", strconv.Itoa(end - first), "--users", strconv.Itoa(cfg.users),
			"--local-addr", local, "--addrs", strconv.Itoa(n), "--connect-concurrency", strconv.Itoa(cfg.concurrency),
			"--acks", cfg.acks.String(), "--timeout", cfg.timeout.String()}
		if cfg.profileDir != "" {
			args = append(args, "--cpu-profile", filepath.Join(cfg.profileDir, fmt.Sprintf("worker%d-%s.pprof", k, cfg.name)))
		}
		if cfg.traceDir != "" {
			args = append(args, "--trace", filepath.Join(cfg.traceDir, fmt.Sprintf("worker%d-%s.trace", k, cfg.name)))
		}
		args = append(append(args, "--"), cfg.target.WorkerArgs()...)
		p, err := startWorker(k, first, end, args, cfg.target.WorkerEnv())
		if err != nil {
			f.kill()
			return nil, err
		}
		f.procs = append(f.procs, p)
	}
	return f, nil
}

// addrsFor is how many source addresses count clients dial from.
func (cfg fleetConfig) addrsFor(count int) int {
	if cfg.perAddr < 1 {
		return 1
	}
	return max(1, (count+cfg.perAddr-1)/cfg.perAddr)
}

// addrs is how many source addresses the whole fleet takes.
func (cfg fleetConfig) addrs() int {
	n := 0
	for k := range cfg.workers {
		n += cfg.addrsFor((k+1)*cfg.count/cfg.workers - k*cfg.count/cfg.workers)
	}
	return n
}

func startWorker(id, first, last int, args, env []string) (*workerProc, error) {
	cmd, err := spawnWorker(args)
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, env...)
	p := &workerProc{id: id, first: first, last: last, cmd: cmd, stderr: &tailBuffer{max: 4096}, done: make(chan struct{}),
		rounds: make(map[int64][2]int64), replies: make(map[int64]workerMsg)}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", id, err)
	}
	go p.read(stdout)
	return p, nil
}

// read takes the worker's lines until its stdout ends.
func (p *workerProc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // a report holds per-user counts
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("{")) {
			continue // not a report (a test binary's own chatter)
		}
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.mu.Lock()
			p.err = fmt.Errorf("worker %d wrote %.80q: %w", p.id, sc.Bytes(), err)
			p.mu.Unlock()
			continue
		}
		p.take(m)
	}
	io.Copy(io.Discard, r)
}

func (p *workerProc) take(m workerMsg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch m.Kind {
	case "reply":
		p.replies[m.Seq] = m
		if m.Seq == p.phaseSeq {
			clear(p.rounds)
		}
	case "final":
		p.final = &m
	}
	for _, r := range m.Rounds {
		p.rounds[r[0]] = [2]int64{r[1], r[2]}
	}
	m.PerUser, m.Latency, m.Windows = nil, nil, nil // not kept: latest is for the counters
	p.latest = m
}

// send writes one command line to every live worker.
func (f *fleet) send(cmd workerCmd) int64 {
	f.mu.Lock()
	f.seq++
	cmd.Seq = f.seq
	f.mu.Unlock()
	b, _ := json.Marshal(cmd)
	for _, p := range f.procs {
		p.mu.Lock()
		skip := p.killed || p.inputDone
		if cmd.Cmd == cmdPhase {
			p.phaseSeq = cmd.Seq
		}
		p.mu.Unlock()
		if !skip {
			p.stdin.Write(append(b, '\n'))
		}
	}
	return cmd.Seq
}

// do sends a command to every live worker and waits up to timeout for
// every reply.
func (f *fleet) do(ctx context.Context, cmd workerCmd, timeout time.Duration) ([]workerMsg, error) {
	seq := f.send(cmd)
	var out []workerMsg
	_, err := f.waitFor(ctx, time.Now().Add(timeout), func() bool {
		out = out[:0]
		for _, p := range f.procs {
			p.mu.Lock()
			m, ok := p.replies[seq]
			skip := p.killed
			p.mu.Unlock()
			if skip {
				continue
			}
			if !ok {
				return false
			}
			out = append(out, m)
		}
		return true
	}, nil)
	if err == nil && len(out) < f.live() {
		err = fmt.Errorf("%s: not every worker replied within %s", cmd.Cmd, timeout)
	}
	for _, p := range f.procs {
		p.mu.Lock()
		delete(p.replies, seq)
		p.mu.Unlock()
	}
	return out, err
}

// live is how many workers were not killed on purpose.
func (f *fleet) live() int {
	n := 0
	for _, p := range f.procs {
		p.mu.Lock()
		if !p.killed {
			n++
		}
		p.mu.Unlock()
	}
	return n
}

// totals adds up the latest counters of the workers not killed.
func (f *fleet) totals() workerMsg {
	var t workerMsg
	t.Closes = make(map[string]int64)
	for _, p := range f.procs {
		p.mu.Lock()
		m, killed := p.latest, p.killed
		p.mu.Unlock()
		if killed {
			continue
		}
		t.add(m)
	}
	return t
}

// add sums m's counters into t.
func (t *workerMsg) add(m workerMsg) {
	t.Connected += m.Connected
	t.Welcomed += m.Welcomed
	t.Welcomes += m.Welcomes
	t.Failures += m.Failures
	t.Delivered += m.Delivered
	t.Foreign += m.Foreign
	t.Dups += m.Dups
	t.Acks += m.Acks
	t.CPU += m.CPU
	t.MaxRSSKB = max(t.MaxRSSKB, m.MaxRSSKB)
	if m.Storm != nil {
		if t.Storm == nil {
			t.Storm = &stormData{}
		}
		t.Storm.Welcomes += m.Storm.Welcomes
		t.Storm.Resumed += m.Storm.Resumed
		t.Storm.LastUS = max(t.Storm.LastUS, m.Storm.LastUS)
	}
	if t.Closes == nil {
		t.Closes = make(map[string]int64)
	}
	for k, v := range m.Closes {
		t.Closes[k] += v
	}
	for _, e := range m.Errors {
		if len(t.Errors) < 8 && !slices.Contains(t.Errors, e) {
			t.Errors = append(t.Errors, e)
		}
	}
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

// check returns an error when a worker has ended unasked or written
// garbage.
func (f *fleet) check() error {
	for _, p := range f.procs {
		p.mu.Lock()
		err, final, killed := p.err, p.final, p.killed
		p.mu.Unlock()
		if err != nil {
			return err
		}
		select {
		case <-p.done:
			if final == nil && !killed {
				return fmt.Errorf("%w: worker %d: %s", errWorkerDied, p.id, p.stderr.String())
			}
		default:
		}
	}
	return nil
}

// killWorker ends worker k with SIGKILL: the kernel closes its sockets,
// and its clients send no close frame.
func (f *fleet) killWorker(k int) error {
	p := f.procs[k]
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill worker %d: %w", k, err)
	}
	<-p.done
	p.cmd.Wait()
	return nil
}

// stop tells every worker still running to stop, waits up to grace for
// their final lines and exits, kills the ones still running, and returns
// the final lines.
func (f *fleet) stop(grace time.Duration) ([]workerMsg, error) {
	f.send(workerCmd{Cmd: cmdStop})
	for _, p := range f.procs {
		p.mu.Lock()
		p.inputDone = true
		p.mu.Unlock()
		p.stdin.Close()
	}
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	var finals []workerMsg
	var errs []error
	for _, p := range f.procs {
		p.mu.Lock()
		killed := p.killed
		p.mu.Unlock()
		if killed {
			continue
		}
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
