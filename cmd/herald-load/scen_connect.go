package main

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/progress"
)

// connect waits until every client of the main fleet (started just
// before, connecting from its first moment) has its welcome, and measures
// what setting the connections up cost: the server's CPU per connection
// from the sample before any client to the one after the last welcome.
func (r *runner) connect(ctx context.Context) error {
	pr := &phaseRec{res: &phaseResult{Name: "connect", Started: r.base.At.UTC()}, before: r.base}
	pr.coord0, _ = selfUsage()
	res, err := r.waitConnected(ctx, r.main, r.o.clients, "connected")
	pr.res.Connect = res
	reports := r.end(ctx, pr)
	if err != nil {
		return err
	}
	m := r.reportsOf(reports)
	res.ConnectMS = m.connect.summary()
	if n := float64(res.Connected); n > 0 {
		res.EdgeCPUMS = round3(pr.res.cpuOf(roleEdge) / n * 1000)
		res.ServerCPUMS = round3(pr.res.cpuOf("") / n * 1000)
		res.RedisCPUMS = round3(pr.res.cpuOf(roleRedis) / n * 1000)
		res.RedisCmds = pr.res.redisCommands(n)
	}
	var why []string
	if res.Connected < int64(res.Clients) {
		why = append(why, fmt.Sprintf("%d of %d clients connected within %s", res.Connected, res.Clients, r.o.connectTimeout))
	}
	pr.res.verdict(why)
	r.rep.headline("connect", "server CPU per connection set up (edge; every server process + Redis)",
		fmt.Sprintf("%.3f ms; %.3f ms (%d connections at %.0f/s)", res.EdgeCPUMS, res.ServerCPUMS, res.Connected, res.Rate), pr.res.OK)
	if !pr.res.OK {
		return fmt.Errorf("not every client connected")
	}
	return nil
}

// waitConnected waits until count clients of fl have had a welcome, or
// the connect timeout; a partial connect is in the result, not an error.
func (r *runner) waitConnected(ctx context.Context, fl *fleet, count int, noun string) (*connectResult, error) {
	prog := progress.New(r.stderr, count, noun)
	start := time.Now()
	ok, err := fl.waitFor(ctx, start.Add(r.o.connectTimeout),
		func() bool { return fl.totals().Welcomed >= int64(count) },
		func() { prog.Update(int(fl.totals().Welcomed)) })
	t := fl.totals()
	prog.Finish(int(t.Welcomed))
	res := &connectResult{Clients: count, Connected: t.Welcomed, Failures: t.Failures, Closes: t.Closes,
		ConnectS: round3(time.Since(start).Seconds())}
	if res.ConnectS > 0 {
		res.Rate = round3(float64(res.Connected) / res.ConnectS)
	}
	if err == nil && !ok && ctx.Err() != nil {
		err = fmt.Errorf("connecting: %w", ctx.Err())
	}
	return res, err
}

// idle connects more clients, up to --idle-clients in all, holds them all
// idle for --settle, and measures the edges' memory per connection above
// the baseline taken before the first client. The extra clients leave
// (politely) afterwards; the main ones stay.
func (r *runner) idle(ctx context.Context) error {
	extra := r.o.idleClients - r.o.clients
	pr := r.begin(ctx, "idle", "", 0)
	var xf *fleet
	if extra > 0 {
		// The servers' CPU profile of connection set-up: the first 2 s of
		// the extra clients connecting (the main fleet connected before
		// the profiles could start).
		profiled := r.profile(ctx, pr.res, "connect", 0, 2*time.Second)
		var err error
		xf, err = startFleet(r.fleetConfig("idle", r.o.clients, extra, (extra+maxPerWorker-1)/maxPerWorker))
		if err != nil {
			profiled()
			return err
		}
		defer func() {
			xf.stop(30 * time.Second)
			r.awaitSessions(ctx, r.o.clients, 30*time.Second)
		}()
		res, err := r.waitConnected(ctx, xf, extra, "idle connected")
		profiled()
		if err != nil {
			return err
		}
		if reports, err := xf.do(ctx, workerCmd{Cmd: cmdReport}, time.Minute); err == nil {
			res.ConnectMS = mergeReports(reports, 0, 0, func(int) int { return 0 }).connect.summary()
		}
		pr.res.Connect = res
	}
	held := r.main.totals().Welcomed
	if xf != nil {
		held += xf.totals().Welcomed
	}
	sleepUntil(ctx, time.Now().Add(r.o.settle))
	res := &idleResult{Connections: held, SettleS: r.o.settle.Seconds()}
	pr.res.Idle = res
	r.end(ctx, pr) // its sample is the one after settling, every client still connected
	r.perConnection(res, pr.after)
	res.GoMetrics = r.goMetrics(pr.after)
	var why []string
	if want := int64(max(r.o.idleClients, r.o.clients)); held < want {
		why = append(why, fmt.Sprintf("%d of %d clients held", held, want))
	}
	pr.res.verdict(why)
	detail := fmt.Sprintf("heap in use %.0f B, stacks %.0f B, %.2f goroutines, %.2f descriptors per connection",
		res.HeapPerConnB, res.StackPerConnB, res.GoroutinesConn, res.FDsPerConn)
	if !res.GoMetrics {
		detail = fmt.Sprintf("%.2f descriptors per connection; heap, stacks and goroutines n/a: no Go metrics from the process", res.FDsPerConn)
	}
	r.rep.headline("connect", fmt.Sprintf("edge RSS per idle connection at %d connections, above the baseline", held),
		fmt.Sprintf("%.0f B (%s)", res.RSSPerConnB, detail), pr.res.OK)
	return nil
}

// awaitSessions waits (at most max) until the edges hold no more than n
// sessions, so that the next phase's figures do not carry the teardown of
// the clients that just left (a reading that failed or lacks the gauge is
// not taken as done: the wait then ends at max).
func (r *runner) awaitSessions(ctx context.Context, n int, max time.Duration) {
	deadline := time.Now().Add(max)
	for {
		s := takeSample(ctx, r.procs)
		held, read := 0.0, true
		for i, p := range r.procs {
			if p.Role == roleEdge {
				held += s.get(i, metricSessions)
				read = read && s.has(i, metricSessions)
			}
		}
		if (read && held <= float64(n)) || time.Now().After(deadline) || ctx.Err() != nil {
			return
		}
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
}

// perConnection fills the edges' memory per connection: the sample after
// settling against the baseline before any client.
func (r *runner) perConnection(res *idleResult, settled sample) {
	n := float64(res.Connections)
	if n == 0 {
		return
	}
	var rss, heap, stack, g, fds float64
	for i, p := range r.procs {
		if p.Role != roleEdge {
			continue
		}
		d := func(name string) float64 { return settled.get(i, name) - r.base.get(i, name) }
		rss, heap, stack, g, fds = rss+d(metricRSS), heap+d(metricHeapInuse), stack+d(metricStackInuse), g+d(metricGoroutines), fds+d(metricFDs)
	}
	res.RSSPerConnB, res.HeapPerConnB, res.StackPerConnB = round3(rss/n), round3(heap/n), round3(stack/n)
	res.GoroutinesConn, res.FDsPerConn = round3(g/n), round3(fds/n)
}

// goMetrics reports whether the sample holds the Go runtime's figures of
// the edges (Herald's /metrics; Centrifugo is read from /proc only).
func (r *runner) goMetrics(s sample) bool {
	for i, p := range r.procs {
		if p.Role == roleEdge && s.has(i, metricGoroutines) {
			return true
		}
	}
	return false
}
