package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

// secretEnv holds the edges' HS256 secret (the edge reads the same
// variable); the coordinator passes it on to its workers.
const secretEnv = "HERALD_JWT_HS256_SECRET"

const benchHelp = `Connects --clients WebSocket clients (users u0..u<N-1>, device "bench", tenant
--tenant) to the edges, spread over --workers child processes that each dial
from their own loopback address (a random 127.x.y.1, then the next ones), so
no address runs out of ports and no run meets the previous one's TIME_WAIT
sockets (at most 18000 clients per worker: 20000 open files per process;
fewer processes means fewer runtimes competing with Herald for the cores,
so the default is one per 16000). Then, by --mode:
  idle       hold the connections: the edges' RSS and goroutines per connection
             (sampled from --metrics before connecting, once all have their
             welcome, and again after --settle)
  connect    connect as fast as the edge allows (run the edge with
             HERALD_CONNECT_RATE_PER_IP=0): the edges' CPU per new connection
  personal   publish --rate events/s for --duration, each to one user in turn,
             with the publish time in the data: latency XADD -> receipt
             (overall, and its p99 per 5 s of publish time: steady, or
             bursts), delivered vs expected per user after a drain
  broadcast  publish --rounds events to the whole tenant, one at a time: time
             until the last client has each
--metrics lists the admin /metrics of every Herald process ("name=url"): their
RSS and CPU seconds are sampled before and after each phase, and Redis's CPU
from INFO. Progress goes to stderr; stdout gets a table and a last line of
JSON (only the JSON with --json). Every run stops by itself (--timeout).`

// Bench modes.
const (
	modeIdle      = "idle"
	modeConnect   = "connect"
	modePersonal  = "personal"
	modeBroadcast = "broadcast"
)

// benchFlags are the settings of one bench run.
type benchFlags struct {
	mode           string
	clients        int
	workers        int
	edges          string
	redis          redisOptions
	partitions     int
	secret         string
	tenant         string
	metrics        string
	rate           float64
	duration       time.Duration
	batch          int
	rounds         int
	roundTimeout   time.Duration
	roundGap       time.Duration
	connectTimeout time.Duration
	drainTimeout   time.Duration
	settle         time.Duration
	timeout        time.Duration
	concurrency    int
	noAck          bool
	ackEvery       time.Duration
	sourceBase     string
	sloMS          float64
	json           bool
	md             string
	label          string
	profileDir     string
	run            string // random id in every event's data
}

func runBench(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "worker" {
		return runBenchWorker(ctx, args[1:], os.Stdin, os.Stdout)
	}
	setGCPercent(400) // the publisher's garbage is short-lived; its CPU is taken from Herald's
	return bench(ctx, args, os.Stdout, os.Stderr)
}

func parseBenchFlags(args []string) (*benchFlags, error) {
	o := new(benchFlags)
	f := newFlags("bench", benchHelp)
	f.redis(&o.redis)
	f.String(&o.mode, "mode", modePersonal, "idle, connect, personal or broadcast")
	f.Int(&o.clients, "clients", 1000, "WebSocket clients (users u0..u<N-1>)")
	f.Int(&o.workers, "workers", 0, "worker processes (0: one per 16000 clients)")
	f.String(&o.edges, "edges", "ws://127.0.0.1:8080/ws", "comma-separated edge URLs; client i uses edge i mod count")
	f.Int(&o.partitions, "partitions", 0, "ingest partitions; must match the dispatcher")
	f.StringVar(&o.secret, "secret", "", "the edges' HS256 secret, to mint client tokens (env "+secretEnv+")")
	f.String(&o.tenant, "tenant", "bench", "tenant of every client and event")
	f.String(&o.metrics, "metrics", "", "comma-separated [name=]http://host:port/metrics of every Herald process to sample")
	f.Float(&o.rate, "rate", 1000, "personal: events per second")
	f.Duration(&o.duration, "duration", 10*time.Second, "personal: how long to publish")
	f.Int(&o.batch, "batch", 500, "personal: most events in one pipelined round trip")
	f.Int(&o.rounds, "rounds", 20, "broadcast: events, one at a time")
	f.Duration(&o.roundTimeout, "round-timeout", 10*time.Second, "broadcast: longest wait for every client to have a round")
	f.Duration(&o.roundGap, "round-gap", 1500*time.Millisecond, "broadcast: pause between rounds (longer than --ack-every, so a round is not measured against the acks of the one before)")
	f.Duration(&o.connectTimeout, "connect-timeout", 2*time.Minute, "longest wait for every client's welcome")
	f.Duration(&o.drainTimeout, "drain-timeout", 10*time.Second, "personal: longest wait for the last notifications after publishing")
	f.Duration(&o.settle, "settle", 10*time.Second, "idle: wait this long after connecting before the last memory sample")
	f.Duration(&o.timeout, "timeout", 0, "hard limit of the whole run (0: from the other limits)")
	f.Int(&o.concurrency, "connect-concurrency", 256, "dials in flight per worker")
	f.Bool(&o.noAck, "no-ack", false, "clients never ack")
	f.Duration(&o.ackEvery, "ack-every", time.Second, "clients ack (cumulatively) at most this often, like the SDK's default")
	f.String(&o.sourceBase, "source-base", "auto", `first worker's source address, the next ones follow ("auto": random in 127.1-254.x.1, so runs do not share ports; "any": the system's choice)`)
	f.Float(&o.sloMS, "slo-ms", 0, "judge the run: personal p99, broadcast median in ms (0: judge only completeness)")
	f.Bool(&o.json, "json", false, "print only the JSON summary line on stdout")
	f.String(&o.md, "md", "", "append the command, machine conditions, table and JSON to this Markdown file")
	f.String(&o.label, "label", "", "scenario name in the table and the Markdown")
	f.String(&o.profileDir, "cpu-profile", "", "personal and broadcast: save a CPU profile of every --metrics process, taken during the load, in this directory")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	return o, o.check()
}

// check validates the flags and fills in the derived ones.
func (o *benchFlags) check() error {
	switch o.mode {
	case modeIdle, modeConnect, modePersonal, modeBroadcast:
	default:
		return fmt.Errorf("%w: --mode %q: want idle, connect, personal or broadcast", errUsage, o.mode)
	}
	if o.workers == 0 {
		o.workers = max(1, (o.clients+15999)/16000)
	}
	switch {
	case o.clients < 1:
		return fmt.Errorf("%w: --clients %d must be at least 1", errUsage, o.clients)
	case o.workers < 1 || o.workers > o.clients:
		return fmt.Errorf("%w: --workers %d must be 1 to --clients", errUsage, o.workers)
	case (o.clients+o.workers-1)/o.workers > 18000:
		return fmt.Errorf("%w: %d clients per worker: each needs a file and a process may open 20000; add --workers", errUsage, (o.clients+o.workers-1)/o.workers)
	case len(splitList(o.edges)) == 0:
		return fmt.Errorf("%w: --edges is empty", errUsage)
	case !events.ValidTenant(o.tenant):
		return fmt.Errorf("%w: --tenant %q is not a valid tenant id", errUsage, o.tenant)
	case o.mode == modePersonal && (o.rate <= 0 || o.duration <= 0 || o.rate*o.duration.Seconds() < 1):
		return fmt.Errorf("%w: personal mode needs --rate and --duration for at least one event", errUsage)
	case o.mode == modeBroadcast && (o.rounds < 1 || o.rounds > 10000):
		return fmt.Errorf("%w: --rounds %d must be 1 to 10000", errUsage, o.rounds)
	case o.batch < 1 || o.concurrency < 1:
		return fmt.Errorf("%w: --batch and --connect-concurrency must be at least 1", errUsage)
	}
	if o.secret == "" {
		o.secret = os.Getenv(secretEnv)
	}
	if len(o.secret) < auth.MinSecretLen {
		return fmt.Errorf("%w: pass the edges' HS256 secret (at least %d bytes) in --secret or %s", errUsage, auth.MinSecretLen, secretEnv)
	}
	if o.timeout == 0 {
		o.timeout = o.connectTimeout + o.settle + o.duration + o.drainTimeout + time.Minute
		if o.mode == modeBroadcast {
			o.timeout += time.Duration(o.rounds) * (o.roundTimeout + o.roundGap)
		}
	}
	if o.sourceBase == "auto" {
		o.sourceBase = autoSourceBase()
	}
	var id [4]byte
	rand.Read(id[:])
	o.run = hex.EncodeToString(id[:])
	return nil
}

// scenario names the run in file names: the label, else the mode.
func (o *benchFlags) scenario() string {
	if o.label != "" {
		return o.label
	}
	return o.mode
}

// roundCount is the number of broadcast rounds the workers track.
func (o *benchFlags) roundCount() int {
	if o.mode == modeBroadcast {
		return o.rounds
	}
	return 0
}

// benchRun is one coordinator run.
type benchRun struct {
	o      *benchFlags
	eps    []endpoint
	rdb    redis.UniversalClient
	prod   *producer.Producer
	stderr io.Writer
	fleet  *fleet
	s      *benchSummary
	// samples: before connecting, when connected, after the load (or settle)
	before, connected, after sample
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseBenchFlags(args)
	if err != nil {
		return err
	}
	eps, err := parseEndpoints(o.metrics)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	b := &benchRun{o: o, eps: eps, rdb: rdb, stderr: stderr, s: newSummary(o, args),
		prod: producer.New(rdb, producer.WithPrefix(o.redis.prefix), producer.WithPartitions(o.partitions))}
	cpu0, _ := selfUsage()
	runErr := b.run(ctx)
	cpu1, _ := selfUsage()
	b.s.CoordinatorCPUS = round3(cpu1 - cpu0)
	if runErr != nil {
		b.s.Errors = append(b.s.Errors, runErr.Error())
	}
	b.s.finish(b)
	if err := b.s.print(stdout, o.json); err != nil {
		return err
	}
	if o.md != "" {
		if err := b.s.appendMarkdown(o.md); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if b.s.OK != nil && !*b.s.OK {
		return errBenchMissed
	}
	return nil
}

// errBenchMissed makes a run that missed its judgement exit 1.
var errBenchMissed = errors.New("bench: not OK (see the verdict)")

// run connects the clients, runs the mode's load, and collects the
// workers' final reports into b.s.
func (b *benchRun) run(ctx context.Context) error {
	b.before = takeSample(ctx, b.eps, b.rdb)
	fl, err := startFleet(b.o, b.o.secret)
	if err != nil {
		return err
	}
	b.fleet = fl
	loadErr := b.connectAll(ctx)
	if loadErr == nil {
		switch b.o.mode {
		case modeIdle:
			b.connected = takeSample(ctx, b.eps, b.rdb)
			sleepUntil(ctx, time.Now().Add(b.o.settle))
		case modeConnect:
			b.connected = takeSample(ctx, b.eps, b.rdb)
		case modePersonal:
			b.connected = takeSample(ctx, b.eps, b.rdb)
			loadErr = b.personal(ctx)
		case modeBroadcast:
			b.connected = takeSample(ctx, b.eps, b.rdb)
			loadErr = b.broadcast(ctx)
		}
	}
	b.after = takeSample(context.WithoutCancel(ctx), b.eps, b.rdb)
	finals, err := fl.stop(30 * time.Second)
	b.s.addFinals(finals)
	if b.o.profileDir != "" {
		for k := range b.o.workers {
			if fi, err := os.Stat(workerProfile(b.o, k)); err == nil && fi.Size() > 0 {
				b.s.Profiles = append(b.s.Profiles, workerProfile(b.o, k))
			}
		}
	}
	return errors.Join(loadErr, err)
}

// connectAll waits until every client has its welcome, or the connect
// timeout; a partial connect is reported, not an error.
func (b *benchRun) connectAll(ctx context.Context) error {
	prog := newProgress(b.stderr, b.o.clients, "connected")
	start := time.Now()
	n := b.o.clients
	ok, err := b.fleet.waitFor(ctx, start.Add(b.o.connectTimeout),
		func() bool { return b.fleet.totals().Welcomed >= int64(n) },
		func() { prog.update(int(b.fleet.totals().Welcomed)) })
	t := b.fleet.totals()
	prog.finish(int(t.Welcomed))
	b.s.ConnectS = round3(time.Since(start).Seconds())
	if !ok && err == nil && ctx.Err() == nil {
		b.s.Errors = append(b.s.Errors, fmt.Sprintf("only %d of %d clients connected within %s", t.Welcomed, n, b.o.connectTimeout))
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("connecting: %w", ctx.Err())
	}
	return err
}

// personal publishes the personal load, then waits for the drain: until
// every stored event is delivered, nothing more arrives for 3 s, or the
// drain timeout.
func (b *benchRun) personal(ctx context.Context) error {
	pb := newPublisher(b.prod, b.o)
	done := make(chan struct{})
	start := time.Now()
	b.s.pubStart = start.UnixMicro()
	defer b.profile(ctx, b.o.duration/4, min(10*time.Second, b.o.duration/2))()
	go func() {
		defer close(done)
		pb.run(ctx)
	}()
	prog := newProgress(b.stderr, pb.total, "delivered")
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	_, err := b.fleet.waitFor(ctx, start.Add(b.o.timeout), finished, func() { prog.update(int(b.fleet.totals().Delivered)) })
	<-done // ctx ended or a worker died: run returns soon
	b.s.publishDone(pb)
	if err != nil {
		prog.finish(int(b.fleet.totals().Delivered))
		return err
	}
	last, lastChange := int64(-1), time.Now()
	b.s.DrainEnd = "timeout" // still arriving when the drain timeout ended it
	_, err = b.fleet.waitFor(ctx, time.Now().Add(b.o.drainTimeout), func() bool {
		d := b.fleet.totals().Delivered
		if d != last {
			last, lastChange = d, time.Now()
		}
		switch {
		case d >= pb.sent.Load():
			b.s.DrainEnd = "complete"
		case time.Since(lastChange) > 3*time.Second:
			b.s.DrainEnd = "stalled"
		default:
			return false
		}
		return true
	}, func() { prog.update(int(b.fleet.totals().Delivered)) })
	prog.finish(int(b.fleet.totals().Delivered))
	b.s.DrainS = round3(max(0, time.Since(start).Seconds()-b.s.PublishS))
	b.s.expected = pb.expected
	return err
}

// profile starts the --cpu-profile profiles (if asked for); the function
// it returns waits for them and records them in the summary.
func (b *benchRun) profile(ctx context.Context, delay, seconds time.Duration) func() {
	if b.o.profileDir == "" || len(b.eps) == 0 {
		return func() {}
	}
	wait := profileAll(ctx, b.eps, b.o.profileDir, b.o.scenario(), delay, max(seconds, time.Second))
	return func() {
		files, errs := wait()
		b.s.Profiles = append(b.s.Profiles, files...)
		b.s.Errors = append(b.s.Errors, errs...)
	}
}

// broadcast publishes one tenant-wide event per round and waits until
// every connected client has it (or the round timeout).
func (b *benchRun) broadcast(ctx context.Context) error {
	target := b.fleet.totals().Welcomed
	prog := newProgress(b.stderr, b.o.rounds, "rounds")
	defer b.profile(ctx, 0, time.Duration(b.o.rounds)*(b.o.roundGap+50*time.Millisecond))()
	for r := range b.o.rounds {
		if ctx.Err() != nil {
			break
		}
		pub, err := broadcastRound(ctx, b.prod, b.o.tenant, b.o.run, r)
		if err != nil {
			b.s.Errors = append(b.s.Errors, fmt.Sprintf("round %d: %v", r, err))
			continue
		}
		_, err = b.fleet.waitFor(ctx, time.Now().Add(b.o.roundTimeout), func() bool {
			c, _ := b.fleet.round(r)
			return c >= target
		}, nil)
		if err != nil {
			prog.finish(r)
			return err
		}
		count, maxUS := b.fleet.round(r)
		b.s.addRound(r, pub, count, target, maxUS)
		prog.update(r + 1)
		sleepUntil(ctx, time.Now().Add(b.o.roundGap))
	}
	prog.finish(len(b.s.Rounds))
	return nil
}
