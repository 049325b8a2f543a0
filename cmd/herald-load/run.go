package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

const runHelp = `Runs scenarios, in this order, against ONE long-lived deployment with the
same --clients WebSocket clients (users u0..u<N-1>, one device each) held by
long-lived worker processes from the first scenario to the last:
  connect    the clients connect (edge and Redis CPU per connection set
             up); then --idle-clients in all are held idle for --settle
             (the edges' RSS, heap, stacks and goroutines per connection)
  personal   a ladder of --rates, each for --duration: events for one user
             each, in turn (p50/p99 publish -> receipt, lost, CPU per
             notification); the highest rate held (p99 < --slo-ms, 0 lost)
  broadcast  --rounds events to the whole tenant, one at a time: time until
             the last client has each (median and max)
  storm      personal events at --storm-rate while every client drops its
             connection at once and reconnects within --storm-within,
             resuming: all resumed, lost, time until the last welcome
Clients ack as --acks says (each: one ack frame per notification, as soon as
it is read); every event has an idempotency key unless --idempotency=false.
Workers are child processes (this binary again), at most 18000 clients each
(20000 open files per process). Progress goes to stderr; stdout gets the
tables and a last line of JSON (only the JSON with --json); --md appends
them to a Markdown file. Every run stops by itself (--timeout).`

// Scenarios, in the order they run.
var scenarioOrder = []string{"connect", "personal", "broadcast", "storm"}

// runFlags are the settings of a whole run.
type runFlags struct {
	target      string
	tf          map[string]targetFlags
	scenarios   []string
	clients     int
	idleClients int
	workers     int
	tenant      string
	acks        ackMode
	idempotency bool

	rates        []float64
	refRate      float64
	duration     time.Duration
	sloMS        float64
	ladderAll    bool
	stepGap      time.Duration
	batch        int
	rounds       int
	roundGap     time.Duration
	roundTimeout time.Duration
	stormWithin  time.Duration
	stormRate    float64
	stormLead    time.Duration

	settle         time.Duration
	connectTimeout time.Duration
	drainTimeout   time.Duration
	timeout        time.Duration
	concurrency    int
	sourceBase     string
	perAddr        int
	profileDir     string
	traceDir       string
	json           bool
	md             string
	label          string
	run            string // random id; phases add their number
}

func parseRunFlags(args []string) (*runFlags, error) {
	o := &runFlags{tf: make(map[string]targetFlags)}
	f := newFlags("run", runHelp)
	f.String(&o.target, "target", "herald", "the system under load: "+targetNames())
	raw := o.define(f, 0)
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	if err := o.finish(raw); err != nil {
		return nil, err
	}
	return o, o.check()
}

// rawRunFlags are the flags parsed by finish.
type rawRunFlags struct{ scenarios, rates, acks string }

// define defines the flags of a run (every target's too) on f; refRate
// is --ref-rate's default.
func (o *runFlags) define(f *flags, refRate float64) *rawRunFlags {
	raw := new(rawRunFlags)
	for name, spec := range targets {
		o.tf[name] = spec.flags(f)
	}
	f.String(&raw.scenarios, "scenarios", strings.Join(scenarioOrder, ","), "comma-separated: connect, personal, broadcast, storm (they run in that order)")
	f.Int(&o.clients, "clients", 10000, "WebSocket clients held through the run (users u0..u<N-1>, one device each)")
	f.Int(&o.idleClients, "idle-clients", 15000, "connect: clients in all while idle (the extra ones connect after --clients and leave after the memory sample)")
	f.Int(&o.workers, "workers", 0, "worker processes for --clients (0: one per 18000)")
	f.String(&o.tenant, "tenant", "load", "tenant of every client and event")
	f.String(&raw.acks, "acks", ackEach, "how clients ack: each (one ack frame per notification, at once), batched:<interval> (the newest per feed at most that often), none")
	f.Bool(&o.idempotency, "idempotency", true, "give every event an idempotency key (the id field)")
	f.String(&raw.rates, "rates", "2000,5000,10000,15000,20000", "personal: the ladder of events per second, climbed in order")
	f.Float(&o.refRate, "ref-rate", refRate, "personal: a rate measured in every run, after the ladder if the ladder stopped before it (0: none)")
	f.Duration(&o.duration, "duration", time.Minute, "personal: how long each rate is published")
	f.Float(&o.sloMS, "slo-ms", 100, "personal: a rate is held when its p99 is below this and nothing is lost")
	f.Bool(&o.ladderAll, "ladder-all", false, "personal: climb every rate even after one is missed")
	f.Duration(&o.stepGap, "step-gap", 5*time.Second, "personal: pause between rates")
	f.Int(&o.batch, "batch", 500, "personal: most events in one pipelined round trip")
	f.Int(&o.rounds, "rounds", 20, "broadcast: events, one at a time")
	f.Duration(&o.roundGap, "round-gap", 500*time.Millisecond, "broadcast: pause between rounds")
	f.Duration(&o.roundTimeout, "round-timeout", 10*time.Second, "broadcast: longest wait for every client to have a round")
	f.Duration(&o.stormWithin, "storm-within", 5*time.Second, "storm: every client reconnects within this after the drop")
	f.Float(&o.stormRate, "storm-rate", 1000, "storm: personal events per second during the storm")
	f.Duration(&o.stormLead, "storm-lead", 2*time.Second, "storm: publishing before the drop (and after the window)")
	f.Duration(&o.settle, "settle", 10*time.Second, "connect: hold the idle clients this long before the memory sample")
	f.Duration(&o.connectTimeout, "connect-timeout", 2*time.Minute, "longest wait for every client's welcome")
	f.Duration(&o.drainTimeout, "drain-timeout", 10*time.Second, "personal and storm: longest wait for the last notifications after publishing")
	f.Duration(&o.timeout, "timeout", 0, "hard limit of the whole run (0: from the other limits)")
	f.Int(&o.concurrency, "connect-concurrency", 256, "dials in flight per worker")
	f.String(&o.sourceBase, "source-base", "auto", `first source address, the next ones follow ("auto": random in 127.1-254.x.1, so runs do not share ports; "any": the system's choice)`)
	f.Int(&o.perAddr, "clients-per-addr", 500, "clients that dial from one source address, as from one machine (an edge caps the sessions of one address: herald's --max-conns-per-ip is 1000)")
	f.String(&o.profileDir, "cpu-profile", "", "save CPU profiles in this directory: every server process with a /metrics, 10 s during each personal rate and the broadcast; every worker's and this coordinator's whole life")
	f.String(&o.traceDir, "trace", "", "write every frame each client reads and writes to worker<k>-<fleet>.trace in this directory (to find out why something was lost; megabytes)")
	f.Bool(&o.json, "json", false, "print only the JSON summary line on stdout")
	f.String(&o.md, "md", "", "append the command, machine conditions, tables and JSON to this Markdown file")
	f.String(&o.label, "label", "", "name of the run in the report")
	return raw
}

// finish reads the flags define left as text.
func (o *runFlags) finish(raw *rawRunFlags) error {
	var err error
	if o.acks, err = parseAckMode(raw.acks); err != nil {
		return err
	}
	if o.scenarios, err = parseScenarios(raw.scenarios); err != nil {
		return err
	}
	if o.rates, err = parseRates(raw.rates); err != nil {
		return err
	}
	if o.refRate < 0 {
		return fmt.Errorf("%w: --ref-rate %v must not be negative", errUsage, o.refRate)
	}
	return nil
}

// parseScenarios reads the list and puts it in running order.
func parseScenarios(s string) ([]string, error) {
	list := splitList(s)
	for _, sc := range list {
		if !slices.Contains(scenarioOrder, sc) {
			return nil, fmt.Errorf("%w: --scenarios: %q is not one of %s", errUsage, sc, strings.Join(scenarioOrder, ", "))
		}
	}
	var out []string
	for _, sc := range scenarioOrder {
		if slices.Contains(list, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --scenarios is empty", errUsage)
	}
	return out, nil
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, r := range splitList(s) {
		v, err := strconv.ParseFloat(r, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%w: --rates: %q is not a positive number", errUsage, r)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --rates is empty", errUsage)
	}
	return out, nil
}

// maxPerWorker is the most clients one worker holds: each needs a file,
// and a process may open 20000.
const maxPerWorker = 18000

// check validates the flags and fills in the derived ones.
func (o *runFlags) check() error {
	if _, err := lookupTarget(o.target); err != nil {
		return err
	}
	if o.workers == 0 {
		o.workers = max(1, (o.clients+maxPerWorker-1)/maxPerWorker)
	}
	switch {
	case o.clients < 1:
		return fmt.Errorf("%w: --clients %d must be at least 1", errUsage, o.clients)
	case o.workers < 1 || o.workers > o.clients:
		return fmt.Errorf("%w: --workers %d must be 1 to --clients", errUsage, o.workers)
	case (o.clients+o.workers-1)/o.workers > maxPerWorker:
		return fmt.Errorf("%w: %d clients per worker: each needs a file and a process may open 20000; add --workers", errUsage, (o.clients+o.workers-1)/o.workers)
	case o.duration <= 0 || o.rates[0]*o.duration.Seconds() < 1:
		return fmt.Errorf("%w: personal needs --rates and --duration for at least one event", errUsage)
	case o.rounds < 1 || o.rounds > 10000:
		return fmt.Errorf("%w: --rounds %d must be 1 to 10000", errUsage, o.rounds)
	case o.batch < 1 || o.concurrency < 1 || o.perAddr < 1:
		return fmt.Errorf("%w: --batch, --connect-concurrency and --clients-per-addr must be at least 1", errUsage)
	case o.stormRate <= 0 || o.stormWithin <= 0:
		return fmt.Errorf("%w: --storm-rate and --storm-within must be positive", errUsage)
	}
	if o.timeout == 0 {
		o.timeout = o.estimate() + 2*time.Minute
	}
	if o.sourceBase == "auto" {
		o.sourceBase = autoSourceBase()
	}
	o.run = newRunID()
	return nil
}

// estimate is the longest the scenarios may take by their own limits.
func (o *runFlags) estimate() time.Duration {
	d := o.connectTimeout
	for _, sc := range o.scenarios {
		switch sc {
		case "connect":
			d += o.connectTimeout + o.settle
		case "personal":
			d += time.Duration(len(o.rates)+1) * (o.duration + o.drainTimeout + o.stepGap + 10*time.Second)
		case "broadcast":
			d += time.Duration(o.rounds) * (o.roundTimeout + o.roundGap)
		case "storm":
			d += 2*o.stormLead + o.stormWithin + o.connectTimeout + o.drainTimeout
		}
	}
	return d
}

func (o *runFlags) wants(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

// newRunID is a random [a-z0-9] id for a run's events.
func newRunID() string {
	var id [4]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

func runRun(ctx context.Context, args []string) error {
	setGCPercent(400) // the publisher's garbage is short-lived; its CPU is taken from the server's
	return runScenarios(ctx, args, os.Stdout, os.Stderr)
}

// errNotOK makes a run that missed its judgement exit 1.
var errNotOK = errors.New("not OK (see the verdict)")

func runScenarios(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseRunFlags(args)
	if err != nil {
		return err
	}
	t, err := o.tf[o.target].open(o.common())
	if err != nil {
		return err
	}
	rep, _, runErr := runTarget(ctx, o, t, commandLine("run", args), stderr)
	if err := rep.print(stdout, o.json); err != nil {
		return err
	}
	if o.md != "" {
		if err := rep.appendMarkdown(o.md); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if !rep.OK {
		return errNotOK
	}
	return nil
}

// common are the settings every target takes from the run.
func (o *runFlags) common() targetCommon {
	return targetCommon{tenant: o.tenant, users: max(o.clients, o.idleClients), clients: o.clients}
}

// runTarget readies t (Prepare, Open), runs the scenarios against it with
// workers of its own, from source address o.sourceBase on, and closes it.
// It returns the report (finished, also when the run failed), the next
// free source address, and the error that ended the run, if one did.
func runTarget(ctx context.Context, o *runFlags, t Target, command string, stderr io.Writer) (*runReport, string, error) {
	rep := newRunReport(o, t, command)
	next, err := readyAndRun(ctx, o, t, rep, stderr)
	if err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	rep.finish()
	return rep, next, err
}

func readyAndRun(ctx context.Context, o *runFlags, t Target, rep *runReport, stderr io.Writer) (next string, err error) {
	if p, ok := t.(preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			return o.sourceBase, err
		}
	}
	if err := t.Open(ctx); err != nil {
		return o.sourceBase, err
	}
	defer func() {
		// A server that died or had to be killed is the run's result too.
		if cerr := t.Close(context.WithoutCancel(ctx)); cerr != nil {
			rep.Errors = append(rep.Errors, "close "+t.Name()+": "+cerr.Error())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return o.sourceBase, err
		}
		stop, err := startCPUProfile(filepath.Join(o.profileDir, "coordinator.pprof"))
		if err != nil {
			return o.sourceBase, err
		}
		defer stop()
	}
	r := &runner{o: o, t: t, stderr: stderr, rep: rep}
	err = r.runAll(ctx)
	return r.addrs, err
}
