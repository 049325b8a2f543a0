package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

const soakHelp = `Soaks ONE edge that is never restarted: --cycles times, --clients clients
(users u0..u<N-1>, spread over --workers fresh worker processes) connect,
each receives one notification, then all vanish abruptly: the clients of
the first half of the workers by SIGKILL of their process (the kernel
closes the sockets, no close frame), the rest by closing each socket with
SO_LINGER 0 (a TCP reset, no close frame either). After every cycle it
waits (at most --settle-timeout) for the edge's herald_edge_sessions to
return to its baseline, then reads the edge's open descriptors,
goroutines, RSS and store size. A last wave must all connect and receive.
Judged: descriptors back within 1% of the baseline (or --fd-slack) after
every cycle, RSS not growing by more than --rss-growth from cycle to
cycle after the first, every wave fully connected and receiving.
The edge must be among --metrics (a name starting with "edge").`

// soakFlags are the settings of a soak.
type soakFlags struct {
	target         string
	tf             map[string]targetFlags
	cycles         int
	clients        int
	workers        int
	tenant         string
	acks           ackMode
	idempotency    bool
	rate           float64
	connectTimeout time.Duration
	deliverTimeout time.Duration
	settleTimeout  time.Duration
	limits         soakLimits
	concurrency    int
	sourceBase     string
	perAddr        int
	timeout        time.Duration
	json           bool
	md             string
	label          string
	run            string
}

func parseSoakFlags(args []string) (*soakFlags, error) {
	o := &soakFlags{tf: make(map[string]targetFlags)}
	var acks string
	f := newFlags("soak", soakHelp)
	f.String(&o.target, "target", "herald", "the system under load: "+targetNames())
	for name, spec := range targets {
		o.tf[name] = spec.flags(f)
	}
	f.Int(&o.cycles, "cycles", 10, "cycles of connect, receive, vanish")
	f.Int(&o.clients, "clients", 15000, "clients of every cycle and of the last wave")
	f.Int(&o.workers, "workers", 2, "worker processes of every cycle (fresh each cycle); the first half are killed")
	f.String(&o.tenant, "tenant", "soak", "tenant of every client and event")
	f.String(&acks, "acks", ackEach, "how clients ack: each, batched:<interval> or none")
	f.Bool(&o.idempotency, "idempotency", true, "give every event an idempotency key")
	f.Float(&o.rate, "rate", 10000, "events per second when every client gets its notification")
	f.Duration(&o.connectTimeout, "connect-timeout", 2*time.Minute, "longest wait for a wave's welcomes")
	f.Duration(&o.deliverTimeout, "deliver-timeout", 30*time.Second, "longest wait for a wave's notifications")
	f.Duration(&o.settleTimeout, "settle-timeout", 2*time.Minute, "longest wait for the edge's sessions to return to the baseline")
	f.Float(&o.limits.FDSlack, "fd-slack", 48, "descriptors the edge may hold above its baseline after a cycle, when more than 1% of it (its Redis pools grow to about 30 connections under load, and the store's files come and go)")
	f.Float(&o.limits.RSSGrowth, "rss-growth", 0.10, "largest growth of the edge's RSS with a cycle's clients connected from one cycle to the next, after the first two")
	f.Int(&o.concurrency, "connect-concurrency", 256, "dials in flight per worker")
	f.String(&o.sourceBase, "source-base", "auto", `first source address; every cycle takes the next ones ("auto": random in 127.1-254.x.1)`)
	f.Int(&o.perAddr, "clients-per-addr", 500, "clients that dial from one source address (an edge caps the sessions of one address: herald's --max-conns-per-ip is 1000)")
	f.Duration(&o.timeout, "timeout", 0, "hard limit of the whole soak (0: from the other limits)")
	f.Bool(&o.json, "json", false, "print only the JSON summary line on stdout")
	f.String(&o.md, "md", "", "append the command, the cycles and the JSON to this Markdown file")
	f.String(&o.label, "label", "", "name of the soak in the report")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	var err error
	if o.acks, err = parseAckMode(acks); err != nil {
		return nil, err
	}
	o.limits.FDFraction = 0.01
	return o, o.check()
}

func (o *soakFlags) check() error {
	if _, err := lookupTarget(o.target); err != nil {
		return err
	}
	switch {
	case o.cycles < 1 || o.clients < 1:
		return fmt.Errorf("%w: --cycles and --clients must be at least 1", errUsage)
	case o.workers < 2 || o.workers > o.clients:
		return fmt.Errorf("%w: --workers %d: a soak needs 2 or more (half are killed, half reset) and at most --clients", errUsage, o.workers)
	case (o.clients+o.workers-1)/o.workers > maxPerWorker:
		return fmt.Errorf("%w: %d clients per worker: a process may open 20000 files; add --workers", errUsage, (o.clients+o.workers-1)/o.workers)
	case o.rate <= 0 || o.perAddr < 1:
		return fmt.Errorf("%w: --rate and --clients-per-addr must be positive", errUsage)
	}
	if o.timeout == 0 {
		o.timeout = time.Duration(o.cycles+1)*(o.connectTimeout+o.deliverTimeout+o.settleTimeout+time.Minute) + time.Minute
	}
	if o.sourceBase == "auto" {
		o.sourceBase = autoSourceBase()
	}
	o.run = newRunID()
	return nil
}

func runSoak(ctx context.Context, args []string) error {
	return soak(ctx, args, os.Stdout, os.Stderr)
}

func soak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSoakFlags(args)
	if err != nil {
		return err
	}
	t, err := o.tf[o.target].open(targetCommon{tenant: o.tenant, users: o.clients})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := t.Open(ctx); err != nil {
		return err
	}
	defer t.Close(context.WithoutCancel(ctx))
	s := &soaker{o: o, t: t, stderr: stderr, addrs: o.sourceBase,
		rep: &soakReport{Target: t.Name(), Label: o.label, Command: commandLine("soak", args), Started: time.Now().UTC(),
			Cycles: o.cycles, Clients: o.clients, Workers: o.workers, Acks: o.acks.String(), Limits: o.limits}}
	runErr := s.soak(ctx)
	if runErr != nil {
		s.rep.Errors = append(s.rep.Errors, runErr.Error())
	}
	s.rep.finish()
	if err := s.rep.print(stdout, o.json); err != nil {
		return err
	}
	if o.md != "" {
		if err := s.rep.appendMarkdown(o.md); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if !s.rep.Verdict.OK {
		return errNotOK
	}
	return nil
}

// soaker runs the cycles of one soak against one edge.
type soaker struct {
	o      *soakFlags
	t      Target
	stderr io.Writer
	rep    *soakReport
	edge   Process
	addrs  string
	phase  int
}

// errNoEdge says the soak cannot see the edge it soaks.
var errNoEdge = errors.New("soak: no edge process to watch: give its admin /metrics as --metrics edge=http://host:port/metrics")

func (s *soaker) soak(ctx context.Context) error {
	procs, err := s.t.Processes(ctx)
	if err != nil {
		s.rep.Errors = append(s.rep.Errors, err.Error())
	}
	found := false
	for _, p := range procs {
		if p.Role == roleEdge && !found {
			s.edge, found = p, true
		}
	}
	if !found {
		return errNoEdge
	}
	base, err := s.read(ctx)
	if err != nil {
		return err
	}
	s.rep.Baseline = base
	for c := 1; c <= s.o.cycles && ctx.Err() == nil; c++ {
		fmt.Fprintf(s.stderr, "soak: cycle %d of %d\n", c, s.o.cycles)
		sm, err := s.cycle(ctx, c, true)
		s.rep.Samples = append(s.rep.Samples, sm)
		if err != nil {
			return err
		}
	}
	fmt.Fprintln(s.stderr, "soak: last wave")
	last, err := s.cycle(ctx, s.o.cycles+1, false)
	s.rep.Last = last
	return err
}

// read samples the edge.
func (s *soaker) read(ctx context.Context) (soakSample, error) {
	m, err := readProcess(ctx, s.edge)
	if err != nil && len(m) == 0 {
		return soakSample{}, err
	}
	return soakSample{Sessions: m[metricSessions], FDs: m[metricFDs], Goroutines: m[metricGoroutines],
		RSSMB: round3(m[metricRSS] / (1 << 20)), StoreMB: round3(m[metricStoreBytes] / (1 << 20))}, nil
}
