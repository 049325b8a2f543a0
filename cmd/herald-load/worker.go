package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A worker is a child process of the coordinator (`herald-load worker
// ...`) that owns a slice of the clients: users u<first>..u<first+count-1>,
// dialling from one source address so that no single address runs out of
// ephemeral ports. It lives as long as its clients: across every phase of
// a run. The coordinator steers it with one JSON command a line on stdin
// (workerCmd) and it reports in JSON lines on stdout: a tick every --tick
// with its counters, a reply to each command, and a final line when it
// stops (on "stop", EOF on stdin, or after --timeout).

// workerFlags are a worker's settings; the coordinator passes them.
type workerFlags struct {
	id          int
	target      string
	first       int
	count       int
	users       int    // clients of the whole run: user n's events are n mod users
	localAddr   string // the first source address ("" for the system's choice)
	addrs       int    // consecutive source addresses from localAddr; client i dials from the (i mod addrs)-th
	concurrency int
	acks        ackMode
	tick        time.Duration
	timeout     time.Duration
	profile     string   // CPU profile file of the whole life; "" for none
	trace       string   // frame trace file; "" for none
	targetArgs  []string // after "--": the target's client settings
}

func parseWorkerFlags(args []string) (*workerFlags, error) {
	o := new(workerFlags)
	var acks string
	f := newFlags("worker", "A child process of herald-load run and soak; not for direct use.")
	f.IntVar(&o.id, "id", 0, "worker number")
	f.StringVar(&o.target, "target", "herald", "target")
	f.IntVar(&o.first, "first", 0, "first user index")
	f.IntVar(&o.count, "count", 0, "clients of this worker")
	f.IntVar(&o.users, "users", 0, "clients of the whole run")
	f.StringVar(&o.localAddr, "local-addr", "", "first source address")
	f.IntVar(&o.addrs, "addrs", 1, "consecutive source addresses, the clients spread over them")
	f.IntVar(&o.concurrency, "connect-concurrency", 256, "dials in flight")
	f.StringVar(&acks, "acks", ackEach, "each, batched:<interval> or none")
	f.DurationVar(&o.tick, "tick", 100*time.Millisecond, "report interval")
	f.DurationVar(&o.timeout, "timeout", time.Hour, "hard stop")
	f.StringVar(&o.profile, "cpu-profile", "", "write a CPU profile of the worker's life to this file")
	f.StringVar(&o.trace, "trace", "", "write every frame in and out to this file")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	o.targetArgs = f.Args()
	var err error
	if o.acks, err = parseAckMode(acks); err != nil {
		return nil, err
	}
	if o.count < 0 || o.users < o.first+o.count || o.concurrency < 1 || o.addrs < 1 {
		return nil, fmt.Errorf("%w: worker: bad slice %d+%d of %d", errUsage, o.first, o.count, o.users)
	}
	return o, nil
}

// workerCmd is one command from the coordinator.
type workerCmd struct {
	Cmd    string `json:"cmd"` // cmdPhase, cmdReport, cmdStorm, cmdVanish or cmdStop
	Seq    int64  `json:"seq"`
	Run    string `json:"run,omitempty"`    // phase: the run id in its events
	Kind   string `json:"kind,omitempty"`   // phase: kindPersonal, kindBroadcast, or "" (none expected)
	Rounds int    `json:"rounds,omitempty"` // phase: broadcast rounds
	AtUS   int64  `json:"at_us,omitempty"`  // storm: when every client drops its connection (unix µs)
	Within int64  `json:"within_ms,omitempty"`
}

// Worker commands.
const (
	cmdPhase  = "phase"  // count the notifications of a new run id from now on
	cmdReport = "report" // reply with the phase's histograms and per-user counts
	cmdStorm  = "storm"  // at AtUS drop every connection; each reconnects within Within ms
	cmdVanish = "vanish" // reset every socket (RST) and never reconnect
	cmdStop   = "stop"   // close every connection politely and exit
)

// workerMsg is one line from a worker.
type workerMsg struct {
	Kind      string           `json:"k"` // "tick", "reply" or "final"
	Seq       int64            `json:"seq,omitempty"`
	Worker    int              `json:"w"`
	Connected int64            `json:"connected"` // sessions open now
	Welcomed  int64            `json:"welcomed"`  // clients that have had a welcome
	Welcomes  int64            `json:"welcomes"`  // welcomes of every session
	Failures  int64            `json:"failures"`  // sessions that ended before a welcome
	Closes    map[string]int64 `json:"closes,omitempty"`
	Errors    []string         `json:"errors,omitempty"` // a few examples
	phaseCounts
	Rounds [][3]int64 `json:"rounds,omitempty"` // round, count, max latency µs
	Storm  *stormData `json:"storm,omitempty"`
	// replies to report, and final
	Connect  *histData          `json:"connect,omitempty"`
	Latency  *histData          `json:"latency,omitempty"`
	Windows  map[int64]histData `json:"windows,omitempty"`
	PerUser  []int64            `json:"per_user,omitempty"`
	CPU      float64            `json:"cpu_s,omitempty"`
	MaxRSSKB int64              `json:"maxrss_kb,omitempty"`
}

// phaseCounts are the counters of the current phase.
type phaseCounts struct {
	Delivered int64 `json:"delivered"` // notifications of the phase's run
	Foreign   int64 `json:"foreign"`   // of another run, or not for the user
	Dups      int64 `json:"dups"`      // dropped by the client's dedup
	Acks      int64 `json:"acks"`      // ack frames sent
}

// worker is one worker's state, shared by its client goroutines.
type worker struct {
	o       *workerFlags
	side    ClientSide
	acks    ackMode
	dialers []*http.Client // one per source address
	trace   *tracer
	start   time.Time

	connected, welcomed, welcomes, failures atomic.Int64
	connectH                                histogram
	phase                                   atomic.Pointer[phaseState]
	storm                                   atomic.Pointer[stormState]
	clients                                 []*client

	mu     sync.Mutex
	closes map[string]int64
	errs   []string
}

func runWorker(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o, err := parseWorkerFlags(args)
	if err != nil {
		return err
	}
	spec, err := lookupTarget(o.target)
	if err != nil {
		return err
	}
	side, err := spec.client(o.targetArgs)
	if err != nil {
		return err
	}
	if o.profile != "" {
		stop, err := startCPUProfile(o.profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	tr, err := openTracer(o.trace)
	if err != nil {
		return err
	}
	defer tr.close()
	dialers, err := newDialers(o.localAddr, o.addrs)
	if err != nil {
		return err
	}
	w := &worker{o: o, side: side, acks: o.acks, dialers: dialers, trace: tr, start: time.Now(), closes: make(map[string]int64)}
	w.phase.Store(newPhaseState(workerCmd{}, o.count))
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	out := &lineWriter{w: bufio.NewWriter(stdout)}
	var wg sync.WaitGroup
	w.startClients(ctx, &wg)
	go w.commands(ctx, cancel, stdin, out, &wg)
	w.report(ctx, out)
	wg.Wait()
	return out.write(w.final())
}

// startClients starts every client, at most --connect-concurrency dialling
// at once (a gate each holds until its first welcome or failure).
func (w *worker) startClients(ctx context.Context, wg *sync.WaitGroup) {
	gate := make(chan struct{}, w.o.concurrency)
	w.clients = make([]*client, w.o.count)
	for i := range w.clients {
		w.clients[i] = &client{w: w, i: i, proto: w.side.Client(w.o.first + i)}
	}
	wg.Go(func() {
		for _, c := range w.clients {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
			c.begin = time.Now()
			wg.Go(func() { c.run(ctx, gate) })
		}
	})
}

// commands reads the coordinator's commands until stop or EOF, which end
// the worker.
func (w *worker) commands(ctx context.Context, cancel context.CancelFunc, stdin io.Reader, out *lineWriter, wg *sync.WaitGroup) {
	defer cancel()
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var cmd workerCmd
		if err := json.Unmarshal(sc.Bytes(), &cmd); err != nil {
			w.note(fmt.Sprintf("bad command %.80q: %v", sc.Bytes(), err))
			continue
		}
		if cmd.Cmd == cmdStop {
			return
		}
		reply := w.do(ctx, cmd)
		reply.Kind, reply.Seq = "reply", cmd.Seq
		reply.CPU, reply.MaxRSSKB = selfUsage()
		if out.write(reply) != nil {
			return
		}
	}
}

// do carries out one command and returns the reply's content.
func (w *worker) do(ctx context.Context, cmd workerCmd) workerMsg {
	switch cmd.Cmd {
	case cmdPhase:
		w.phase.Store(newPhaseState(cmd, w.o.count))
	case cmdReport:
		return w.phaseReport(w.counters(""))
	case cmdStorm:
		w.stormAll(ctx, cmd)
	case cmdVanish:
		for _, c := range w.clients {
			if err := c.vanish(); err != nil {
				w.note(err.Error())
			}
		}
	default:
		w.note("unknown command " + cmd.Cmd)
	}
	return w.counters("")
}

// stormAll waits until the storm's time, then drops every connection at
// once; each client reconnects at a time of its own, spread evenly over
// the next Within milliseconds.
func (w *worker) stormAll(ctx context.Context, cmd workerCmd) {
	at := time.UnixMicro(cmd.AtUS)
	w.storm.Store(&stormState{atUS: cmd.AtUS})
	if sleepUntil(ctx, at) != nil {
		return
	}
	within := time.Duration(cmd.Within) * time.Millisecond
	for _, c := range w.clients {
		c.drop(at.Add(time.Duration(rand.Int64N(int64(within) + 1))))
	}
}

// report writes a tick line every --tick until ctx ends.
func (w *worker) report(ctx context.Context, out *lineWriter) {
	t := time.NewTicker(w.o.tick)
	defer t.Stop()
	var sent []int64
	var sentPhase *phaseState
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := w.counters("tick")
		ph := w.phase.Load()
		if ph != sentPhase {
			sentPhase, sent = ph, make([]int64, len(ph.rounds))
		}
		for i := range ph.rounds {
			if c := ph.rounds[i].count.Load(); c != sent[i] {
				sent[i] = c
				m.Rounds = append(m.Rounds, [3]int64{int64(i), c, ph.rounds[i].maxUS.Load()})
			}
		}
		if out.write(m) != nil {
			return // the coordinator is gone; stdin's EOF stops us
		}
	}
}

func (w *worker) counters(kind string) workerMsg {
	ph := w.phase.Load()
	m := workerMsg{Kind: kind, Worker: w.o.id, Connected: w.connected.Load(), Welcomed: w.welcomed.Load(),
		Welcomes: w.welcomes.Load(), Failures: w.failures.Load(), phaseCounts: ph.counts()}
	if st := w.storm.Load(); st != nil {
		d := st.data(false)
		m.Storm = &d
	}
	w.mu.Lock()
	if len(w.closes) > 0 {
		m.Closes = make(map[string]int64, len(w.closes))
		for k, v := range w.closes {
			m.Closes[k] = v
		}
	}
	m.Errors = append([]string(nil), w.errs...)
	w.mu.Unlock()
	return m
}

// phaseReport adds the phase's histograms, rounds and per-user counts.
func (w *worker) phaseReport(m workerMsg) workerMsg {
	ph := w.phase.Load()
	for i := range ph.rounds {
		m.Rounds = append(m.Rounds, [3]int64{int64(i), ph.rounds[i].count.Load(), ph.rounds[i].maxUS.Load()})
	}
	ch, lh := w.connectH.data(), ph.latency.data()
	m.Connect, m.Latency = &ch, &lh
	m.Windows = ph.windows.data()
	m.PerUser = make([]int64, len(ph.perUser))
	for i := range ph.perUser {
		m.PerUser[i] = ph.perUser[i].Load()
	}
	if st := w.storm.Load(); st != nil {
		d := st.data(true)
		m.Storm = &d
	}
	return m
}

// final is the last line: the phase report plus the worker's own CPU
// time and peak RSS.
func (w *worker) final() workerMsg {
	m := w.phaseReport(w.counters("final"))
	m.CPU, m.MaxRSSKB = selfUsage()
	return m
}

// closed counts a session end; one that ended before any welcome is a
// connect failure.
func (w *worker) closed(code int, err error, welcomed bool) {
	if !welcomed || code == -1 {
		w.failures.Add(1)
	}
	w.mu.Lock()
	w.closes[fmt.Sprint(code)]++
	w.mu.Unlock()
	if err != nil {
		w.note(err.Error())
	}
}

// note keeps the first few distinct error messages as examples.
func (w *worker) note(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 5 && !slices.Contains(w.errs, msg) {
		w.errs = append(w.errs, msg)
	}
}

// notification records one notification payload that client i read.
func (w *worker) notification(ph *phaseState, i int, p []byte, now time.Time) {
	d, ok := parsePayload(p)
	if !ok || ph.run == "" || d.R != ph.run || d.T == 0 {
		ph.foreign.Add(1)
		return
	}
	lat := now.UnixMicro() - d.T
	switch ph.kind {
	case kindBroadcast:
		if d.N < 0 || d.N >= int64(len(ph.rounds)) {
			ph.foreign.Add(1)
			return
		}
		r := &ph.rounds[d.N]
		for m := r.maxUS.Load(); lat > m && !r.maxUS.CompareAndSwap(m, lat); m = r.maxUS.Load() {
		}
		r.count.Add(1)
	case kindPersonal:
		if d.N%int64(w.o.users) != int64(w.o.first+i) {
			ph.foreign.Add(1)
			return
		}
		ph.windows.record(d.T, lat)
	default:
		ph.foreign.Add(1)
		return
	}
	ph.latency.record(lat)
	ph.perUser[i].Add(1)
	ph.delivered.Add(1)
}

// selfUsage is this process's CPU seconds and peak RSS in KiB so far.
func selfUsage() (cpu float64, maxRSSKB int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds(), ru.Maxrss
}

// startCPUProfile profiles this process into file until stop.
func startCPUProfile(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// lineWriter writes one JSON object per line, whole lines at a time.
type lineWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lineWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Write(b)
	l.w.WriteByte('\n')
	return l.w.Flush()
}
