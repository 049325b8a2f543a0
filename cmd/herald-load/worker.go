package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/client"
	"github.com/heraldrt/herald/wsedge/auth"
)

// A bench worker is a child process of `herald bench` (`herald bench worker
// ...`) that owns a slice of the clients: users u<first>..u<first+count-1>,
// dialling from one source address so that no single address runs out of
// ephemeral ports. It reports to the coordinator in JSON lines on stdout: a
// tick every --tick with its counters, then one final line with its
// histograms and per-user counts. It stops on "stop" or EOF on stdin, or
// after --timeout.

// benchDevice is the device id of every bench client.
const benchDevice = "bench"

// workerFlags are a worker's settings; the coordinator passes them.
type workerFlags struct {
	id          int
	mode        string
	edges       string
	first       int
	count       int
	users       int // clients in the whole run: user n's events are n mod users
	localAddr   string
	tenant      string
	run         string
	rounds      int
	concurrency int
	noAck       bool
	ackEvery    time.Duration
	tick        time.Duration
	timeout     time.Duration
	profile     string // CPU profile file of the whole run; "" for none
}

func parseWorkerFlags(args []string) (*workerFlags, error) {
	o := new(workerFlags)
	f := newFlags("bench worker", "A child process of herald bench; not for direct use.")
	f.IntVar(&o.id, "id", 0, "worker number")
	f.StringVar(&o.mode, "mode", "personal", "bench mode")
	f.StringVar(&o.edges, "edges", "", "edge WebSocket URLs")
	f.IntVar(&o.first, "first", 0, "first user index")
	f.IntVar(&o.count, "count", 0, "clients of this worker")
	f.IntVar(&o.users, "users", 0, "clients of the whole run")
	f.StringVar(&o.localAddr, "local-addr", "", "source address")
	f.StringVar(&o.tenant, "tenant", "bench", "tenant")
	f.StringVar(&o.run, "run", "", "run id in every event's data")
	f.IntVar(&o.rounds, "rounds", 0, "broadcast rounds")
	f.IntVar(&o.concurrency, "connect-concurrency", 256, "dials in flight")
	f.BoolVar(&o.noAck, "no-ack", false, "clients never ack")
	f.DurationVar(&o.ackEvery, "ack-every", time.Second, "clients ack at most this often")
	f.DurationVar(&o.tick, "tick", 100*time.Millisecond, "report interval")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "hard stop")
	f.StringVar(&o.profile, "cpu-profile", "", "write a CPU profile of the run to this file")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if o.count < 0 || o.users < o.first+o.count || splitList(o.edges) == nil || o.concurrency < 1 {
		return nil, fmt.Errorf("%w: bench worker: bad slice %d+%d of %d or no --edges", errUsage, o.first, o.count, o.users)
	}
	return o, nil
}

// benchData is the data of every bench event: publish time in unix µs, the
// event's number (personal: the user is n mod clients; broadcast: the
// round) and the run id.
type benchData struct {
	T int64  `json:"t"`
	N int64  `json:"n"`
	R string `json:"r"`
}

// workerMsg is one line from a worker.
type workerMsg struct {
	Kind      string           `json:"k"` // "tick" or "final"
	Worker    int              `json:"w"`
	Connected int64            `json:"connected"` // sessions open now
	Welcomed  int64            `json:"welcomed"`  // clients that have had a welcome
	Failures  int64            `json:"failures"`  // connect attempts that failed
	Delivered int64            `json:"delivered"` // bench notifications of this run
	Foreign   int64            `json:"foreign"`   // notifications of other runs or users
	Dups      int64            `json:"dups"`      // dropped by the client's dedup
	Rounds    [][3]int64       `json:"rounds,omitempty"`
	Closes    map[string]int64 `json:"closes,omitempty"` // close code -> count ("-1": dial failed)
	Errors    []string         `json:"errors,omitempty"` // a few examples
	// final only
	Connect  *histData          `json:"connect,omitempty"`
	Latency  *histData          `json:"latency,omitempty"`
	Windows  map[int64]histData `json:"windows,omitempty"` // personal: latency by publish time (see windowHists)
	PerUser  []int64            `json:"per_user,omitempty"`
	CPU      float64            `json:"cpu_s,omitempty"`
	MaxRSSKB int64              `json:"maxrss_kb,omitempty"`
}

// benchWorker is one worker's state, shared by its client goroutines.
type benchWorker struct {
	o         *workerFlags
	secret    []byte
	start     time.Time
	connected atomic.Int64
	welcomed  atomic.Int64
	failures  atomic.Int64
	delivered atomic.Int64
	foreign   atomic.Int64
	perUser   []atomic.Int64
	rounds    []struct{ count, maxUS atomic.Int64 }
	connectH  histogram
	latencyH  histogram
	windows   windowHists
	clients   []*client.Client
	dialer    *http.Client

	mu     sync.Mutex
	closes map[string]int64
	errs   []string
}

func runBenchWorker(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	o, err := parseWorkerFlags(args)
	if err != nil {
		return err
	}
	secret := os.Getenv(secretEnv)
	if len(secret) < auth.MinSecretLen {
		return fmt.Errorf("%w: bench worker: %s must hold the edge's HS256 secret", errUsage, secretEnv)
	}
	w := &benchWorker{o: o, secret: []byte(secret), start: time.Now(), closes: make(map[string]int64),
		perUser: make([]atomic.Int64, o.count), clients: make([]*client.Client, o.count)}
	w.rounds = make([]struct{ count, maxUS atomic.Int64 }, o.rounds)
	if o.profile != "" {
		stop, err := startCPUProfile(o.profile)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	go func() { // stop on "stop" or when the coordinator goes away
		sc := bufio.NewScanner(stdin)
		for sc.Scan() && strings.TrimSpace(sc.Text()) != "stop" {
		}
		cancel()
	}()
	out := &lineWriter{w: bufio.NewWriter(stdout)}
	var wg sync.WaitGroup
	w.startClients(ctx, &wg)
	w.report(ctx, out)
	wg.Wait()
	return out.write(w.final())
}

// startClients starts every client, at most --connect-concurrency dialling
// at once (a gate each holds until its first welcome or failure).
func (w *benchWorker) startClients(ctx context.Context, wg *sync.WaitGroup) {
	gate := make(chan struct{}, w.o.concurrency)
	edges := splitList(w.o.edges)
	w.dialer = benchDialer(w.o.localAddr)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range w.o.count {
			select {
			case gate <- struct{}{}:
			case <-ctx.Done():
				return
			}
			user := w.o.first + i
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.runClient(ctx, i, edges[user%len(edges)], gate)
			}()
		}
	}()
}

// runClient runs one client until ctx ends.
func (w *benchWorker) runClient(ctx context.Context, i int, url string, gate <-chan struct{}) {
	user := w.o.first + i
	claims := auth.Claims{Subject: "u" + strconv.Itoa(user), Tenant: w.o.tenant, Device: benchDevice}
	token, err := auth.Mint(w.secret, claims, w.o.timeout+time.Hour)
	if err != nil {
		w.note("mint: " + err.Error())
		<-gate
		return
	}
	begin := time.Now()
	var gated, welcomed, up bool // touched by the client's goroutine only
	release := func() {
		if !gated {
			gated = true
			<-gate
		}
	}
	c := client.New(client.Config{
		URL: url, Token: func() (string, error) { return token, nil }, Dialer: w.dialer, NoAck: w.o.noAck, AckEvery: w.o.ackEvery,
		OnEvent: func(kind, detail string) {
			switch kind {
			case "connected":
				up = true
				w.connected.Add(1)
			case "welcome":
				if !welcomed {
					welcomed = true
					w.welcomed.Add(1)
					w.connectH.record(time.Since(begin).Microseconds())
				}
				release()
			case "closed":
				if up {
					up = false
					w.connected.Add(-1)
				}
				w.closed(detail, welcomed)
				release()
			}
		},
	})
	w.clients[i] = c
	err = c.Run(ctx, func(n events.Notification) { w.notification(i, n) })
	if up {
		w.connected.Add(-1)
	}
	release()
	if err != nil {
		w.note(err.Error())
	}
}

// closed counts a session end ("<code> <error>"); one that ended before a
// welcome is a connect failure.
func (w *benchWorker) closed(detail string, welcomed bool) {
	code, msg, _ := strings.Cut(detail, " ")
	if !welcomed || code == "-1" {
		w.failures.Add(1)
	}
	w.mu.Lock()
	w.closes[code]++
	w.mu.Unlock()
	w.note(msg)
}

// note keeps the first few distinct error messages as examples.
func (w *benchWorker) note(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 5 && !slices.Contains(w.errs, msg) {
		w.errs = append(w.errs, msg)
	}
}

// notification records one received notification of client i.
func (w *benchWorker) notification(i int, n events.Notification) {
	now := time.Now()
	d, ok := parseBenchData(n.Data)
	if !ok || d.R != w.o.run || d.T == 0 {
		w.foreign.Add(1)
		return
	}
	if w.o.mode == modeBroadcast {
		if d.N < 0 || d.N >= int64(len(w.rounds)) {
			w.foreign.Add(1)
			return
		}
		r := &w.rounds[d.N]
		lat := now.UnixMicro() - d.T
		for m := r.maxUS.Load(); lat > m && !r.maxUS.CompareAndSwap(m, lat); m = r.maxUS.Load() {
		}
		r.count.Add(1)
	} else if d.N%int64(w.o.users) != int64(w.o.first+i) {
		w.foreign.Add(1)
		return
	} else {
		w.windows.record(d.T, now.UnixMicro()-d.T)
	}
	w.latencyH.recordSince(d.T, now)
	w.perUser[i].Add(1)
	w.delivered.Add(1)
}

// report writes a tick line every --tick until ctx ends.
func (w *benchWorker) report(ctx context.Context, out *lineWriter) {
	t := time.NewTicker(w.o.tick)
	defer t.Stop()
	sent := make([]int64, len(w.rounds))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := w.counters("tick")
		for i := range w.rounds {
			if c := w.rounds[i].count.Load(); c != sent[i] {
				sent[i] = c
				m.Rounds = append(m.Rounds, [3]int64{int64(i), c, w.rounds[i].maxUS.Load()})
			}
		}
		if out.write(m) != nil {
			return // the coordinator is gone; stdin's EOF stops us
		}
	}
}

func (w *benchWorker) counters(kind string) workerMsg {
	m := workerMsg{Kind: kind, Worker: w.o.id, Connected: w.connected.Load(), Welcomed: w.welcomed.Load(),
		Failures: w.failures.Load(), Delivered: w.delivered.Load(), Foreign: w.foreign.Load()}
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

// final is the last line: counters, histograms, per-user counts and the
// worker's own CPU time and peak RSS.
func (w *benchWorker) final() workerMsg {
	m := w.counters("final")
	for i := range w.rounds {
		m.Rounds = append(m.Rounds, [3]int64{int64(i), w.rounds[i].count.Load(), w.rounds[i].maxUS.Load()})
	}
	for _, c := range w.clients {
		if c != nil {
			m.Dups += c.Stats().Duplicates
		}
	}
	ch, lh := w.connectH.data(), w.latencyH.data()
	m.Connect, m.Latency = &ch, &lh
	m.Windows = w.windows.data() // empty but in personal mode
	m.PerUser = make([]int64, len(w.perUser))
	for i := range w.perUser {
		m.PerUser[i] = w.perUser[i].Load()
	}
	m.CPU, m.MaxRSSKB = selfUsage()
	return m
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
		return nil, fmt.Errorf("bench worker cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench worker cpu profile: %w", err)
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
