package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// runner runs the scenarios of one run against one deployment, with one
// fleet of workers (main) that lives from the first to the last.
type runner struct {
	o      *runFlags
	t      Target
	stderr io.Writer
	rep    *runReport
	procs  []Process
	main   *fleet
	base   sample // before any client connected
	phases int
	addrs  string // the next free source address
}

// runAll connects the clients, runs the scenarios in order and stops the
// workers. A scenario that fails to run (not one that misses its target)
// ends the run.
func (r *runner) runAll(ctx context.Context) error {
	procs, err := r.t.Processes(ctx)
	if err != nil {
		r.rep.Errors = append(r.rep.Errors, err.Error())
	}
	r.procs = procs
	r.addrs = r.o.sourceBase
	r.base = takeSample(ctx, procs)
	fl, err := startFleet(r.fleetConfig("main", 0, r.o.clients, r.o.workers))
	if err != nil {
		return err
	}
	r.main = fl
	runErr := r.scenarios(ctx)
	finals, err := fl.stop(30 * time.Second)
	r.rep.addFinals(finals)
	return errors.Join(runErr, err)
}

func (r *runner) scenarios(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{{"connect", r.idle}, {"personal", r.ladder}, {"broadcast", r.broadcast}, {"storm", r.storm}}
	for _, s := range steps {
		if !r.o.wants(s.name) {
			continue
		}
		if err := s.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", s.name, ctx.Err())
		}
	}
	return nil
}

// fleetConfig is a fleet of workers for users [first, first+count), from
// the next free source addresses.
func (r *runner) fleetConfig(name string, first, count, workers int) fleetConfig {
	cfg := fleetConfig{name: name, target: r.t, first: first, count: count, users: max(r.o.clients, first+count), workers: workers,
		sourceBase: r.addrs, perAddr: r.o.perAddr, concurrency: r.o.concurrency, acks: r.o.acks, timeout: r.o.timeout + time.Minute,
		profileDir: r.o.profileDir, traceDir: r.o.traceDir}
	r.addrs = nextAddr(r.addrs, cfg.addrs())
	return cfg
}

// phaseRec is a phase being measured.
type phaseRec struct {
	res    *phaseResult
	before sample
	after  sample  // set by end
	load0  float64 // the workers' CPU seconds at the start
	coord0 float64
}

// setPhase starts a new run id in the main fleet's workers: from their
// reply on, they count only its events. It returns the id and the
// workers' CPU seconds so far.
func (r *runner) setPhase(ctx context.Context, kind string, rounds int) (string, float64, error) {
	r.phases++
	run := r.o.run + "p" + strconv.Itoa(r.phases)
	replies, err := r.main.do(ctx, workerCmd{Cmd: cmdPhase, Run: run, Kind: kind, Rounds: rounds}, 30*time.Second)
	cpu := 0.0
	for _, m := range replies {
		cpu += m.CPU
	}
	return run, cpu, err
}

// begin samples the processes at the start of a phase.
func (r *runner) begin(ctx context.Context, name, run string, load0 float64) *phaseRec {
	coord, _ := selfUsage()
	return &phaseRec{res: &phaseResult{Name: name, Run: run, Started: time.Now().UTC()}, load0: load0, coord0: coord,
		before: takeSample(ctx, r.procs)}
}

// end samples the processes again, asks the workers for their reports,
// and fills the common part of the result. It returns the reports.
func (r *runner) end(ctx context.Context, pr *phaseRec) []workerMsg {
	ctx = context.WithoutCancel(ctx)
	after := takeSample(ctx, r.procs)
	pr.after = after
	reports, err := r.main.do(ctx, workerCmd{Cmd: cmdReport}, time.Minute)
	if err != nil {
		pr.res.addErrors("", err.Error())
	}
	load := 0.0
	for _, m := range reports {
		load += m.CPU
		pr.res.addErrors("client: ", m.Errors...)
	}
	r.fill(pr, after, load-pr.load0)
	r.rep.Phases = append(r.rep.Phases, pr.res)
	return reports
}

// fill computes the per-process figures and the machine's over a phase.
func (r *runner) fill(pr *phaseRec, after sample, loadCPU float64) {
	p, before := pr.res, pr.before
	p.ElapsedS = round3(after.At.Sub(before.At).Seconds())
	p.LoadAvg = [2][3]float64{before.Load, after.Load}
	p.LoadCPUS = round3(loadCPU)
	coord, _ := selfUsage()
	p.CoordCPUS = round3(coord - pr.coord0)
	ours := p.LoadCPUS + p.CoordCPUS
	for i, proc := range r.procs {
		pp := procResult{Name: proc.Name, Role: proc.Role, CPUS: round3(after.get(i, metricCPU) - before.get(i, metricCPU)),
			WireBytes: after.get(i, metricWireBytes) - before.get(i, metricWireBytes)}
		if proc.Role == roleRedis && i < len(before.Procs) && i < len(after.Procs) {
			pp.Commands = commandCosts(before.Procs[i], after.Procs[i])
		}
		for j, s := range []sample{before, after} {
			pp.RSSMB[j] = round3(s.get(i, metricRSS) / (1 << 20))
			pp.Goroutines[j] = s.get(i, metricGoroutines)
			pp.FDs[j] = s.get(i, metricFDs)
			pp.Sessions[j] = s.get(i, metricSessions)
			pp.StoreMB[j] = round3(s.get(i, metricStoreBytes) / (1 << 20))
			if i < len(s.Errs) && s.Errs[i] != "" {
				pp.Errors = append(pp.Errors, s.Errs[i])
			}
		}
		ours += pp.CPUS
		p.Processes = append(p.Processes, pp)
	}
	if before.Busy >= 0 && after.Busy >= 0 {
		p.MachineCPUS = round3(after.Busy - before.Busy)
		p.OtherCPUS = round3(max(0, p.MachineCPUS-ours))
	}
}

// wireBytesOf is the bytes of data frames the edges wrote over a phase.
func (p *phaseResult) wireBytesOf() float64 {
	total := 0.0
	for _, pp := range p.Processes {
		total += pp.WireBytes
	}
	return total
}

// cpuOf is the CPU seconds over a phase of the processes with a role
// ("" for every one).
func (p *phaseResult) cpuOf(role string) float64 {
	total := 0.0
	for _, pp := range p.Processes {
		if role == "" || pp.Role == role {
			total += pp.CPUS
		}
	}
	return total
}

// profile starts the --cpu-profile profiles of the server processes (if
// asked for); the function it returns waits for them and records them.
func (r *runner) profile(ctx context.Context, p *phaseResult, scenario string, delay, seconds time.Duration) func() {
	if r.o.profileDir == "" {
		return func() {}
	}
	wait := profileAll(ctx, r.procs, r.o.profileDir, scenario, delay, max(seconds, time.Second))
	return func() {
		files, errs := wait()
		p.Profiles = append(p.Profiles, files...)
		p.addErrors("", errs...)
	}
}

// merged is the workers' reports of a phase added up.
type merged struct {
	perUser []int64 // by user index - first
	latency histogram
	connect histogram
	windows windowHists
	storm   histogram
	counts  workerMsg
}

// mergeReports adds up reports of a fleet whose users start at first and
// number n.
func mergeReports(reports []workerMsg, first, n int, workerFirst func(w int) int) *merged {
	m := &merged{perUser: make([]int64, n)}
	for _, rep := range reports {
		m.counts.add(rep)
		if rep.Latency != nil {
			m.latency.merge(*rep.Latency)
		}
		if rep.Connect != nil {
			m.connect.merge(*rep.Connect)
		}
		m.windows.merge(rep.Windows)
		if rep.Storm != nil && rep.Storm.Hist != nil {
			m.storm.merge(*rep.Storm.Hist)
		}
		off := workerFirst(rep.Worker) - first
		for i, v := range rep.PerUser {
			if off+i >= 0 && off+i < n {
				m.perUser[off+i] = v
			}
		}
	}
	return m
}

// reportsOf merges the main fleet's reports.
func (r *runner) reportsOf(reports []workerMsg) *merged {
	return mergeReports(reports, 0, r.o.clients, func(w int) int { return r.main.procs[w].first })
}

// lostExtra compares what each user got with what was stored for it; it
// names the first few users who lost some, for the search of a cause.
func lostExtra(expected []int32, got []int64) (want, lost, extra int64, lostUsers []string) {
	for u, e := range expected {
		g := int64(0)
		if u < len(got) {
			g = got[u]
		}
		want += int64(e)
		lost += max(0, int64(e)-g)
		extra += max(0, g-int64(e))
		if g < int64(e) && len(lostUsers) < 10 {
			lostUsers = append(lostUsers, fmt.Sprintf("u%d: %d of %d", u, g, e))
		}
	}
	return want, lost, extra, lostUsers
}
