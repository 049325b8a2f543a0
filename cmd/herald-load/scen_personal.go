package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/progress"
)

// ladder climbs the personal rates in order, each for --duration, and
// stops at the first one missed (p99 at or above --slo-ms, or anything
// lost) unless --ladder-all. The highest rate held is the headline. A
// --ref-rate the ladder did not reach is measured after it, so that every
// run has it.
func (r *runner) ladder(ctx context.Context) error {
	var best float64
	var steps []string
	var ref *personalResult
	for i, rate := range r.o.rates {
		if i > 0 {
			sleepUntil(ctx, time.Now().Add(r.o.stepGap))
		}
		res, err := r.personal(ctx, rate)
		if err != nil {
			return err
		}
		steps = append(steps, stepText(res))
		if rate == r.o.refRate {
			ref = res
		}
		if res.Held {
			best = rate
		} else if !r.o.ladderAll {
			break
		}
	}
	held := best > 0
	value := "none held"
	if held {
		value = fmt.Sprintf("%.0f/s", best)
	}
	r.rep.BestRate = best
	r.rep.headline("personal", fmt.Sprintf("highest personal rate held for %s with p99 < %.3g ms and 0 lost", r.o.duration, r.o.sloMS),
		value+" ("+strings.Join(steps, "; ")+")", held)
	if r.o.refRate <= 0 {
		return nil
	}
	if ref == nil {
		sleepUntil(ctx, time.Now().Add(r.o.stepGap))
		res, err := r.personal(ctx, r.o.refRate)
		if err != nil {
			return err
		}
		ref = res
	}
	r.rep.headline("personal", fmt.Sprintf("personal %.0f/s for %s to %d clients", r.o.refRate, r.o.duration, r.o.clients),
		stepText(ref), ref.Held)
	return nil
}

// stepText is one rate's figures in a headline.
func stepText(res *personalResult) string {
	return fmt.Sprintf("%.0f/s p50 %.1f p99 %.1f ms, lost %d, Redis %.1f µs/notif", res.Rate,
		res.LatencyMS.P50, res.LatencyMS.P99, res.Lost, res.RedisPerNotUS)
}

// personal publishes one rate for --duration and waits for the drain.
func (r *runner) personal(ctx context.Context, rate float64) (*personalResult, error) {
	run, load0, err := r.setPhase(ctx, kindPersonal, 0)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("personal %.0f/s", rate)
	pr := r.begin(ctx, name, run, load0)
	pb := newPublisher(r.t, run, r.o.clients, rate, r.o.duration, r.o.batch, r.o.idempotency)
	stop := r.profile(ctx, pr.res, fmt.Sprintf("personal-%.0f", rate), r.o.duration/4, min(10*time.Second, r.o.duration/2))
	res, err := r.publishAndDrain(ctx, pb, name)
	stop()
	m := r.reportsOf(r.end(ctx, pr))
	res.SLOMS = r.o.sloMS
	r.personalTotals(res, pr.res, pb, m)
	pr.res.Personal = res
	pr.res.verdict(judgePersonal(res))
	return res, err
}

// publishAndDrain runs the publisher, then waits for the drain: until
// every stored event is delivered, nothing more arrives for 3 s, or the
// drain timeout.
func (r *runner) publishAndDrain(ctx context.Context, pb *publisher, noun string) (*personalResult, error) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		pb.run(ctx)
	}()
	prog := progress.New(r.stderr, int(pb.first)+pb.total, noun+" delivered") // the phase's earlier events count too
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	res := &personalResult{Rate: pb.rate, DurationS: round3(float64(pb.total) / pb.rate)}
	_, err := r.main.waitFor(ctx, start.Add(r.o.timeout), finished, func() { prog.Update(int(r.main.totals().Delivered)) })
	<-done // ctx ended or a worker died: run returns soon
	publishDone(res, pb)
	if err != nil {
		prog.Finish(int(r.main.totals().Delivered))
		return res, err
	}
	err = r.drain(ctx, res, pb, prog)
	res.DrainS = round3(max(0, time.Since(start).Seconds()-res.PublishS))
	return res, err
}

// drain waits until the workers have every stored event, or nothing more
// arrives for 3 s, or the drain timeout.
func (r *runner) drain(ctx context.Context, res *personalResult, pb *publisher, prog *progress.Bar) error {
	last, lastChange := int64(-1), time.Now()
	res.DrainEnd = "timeout" // still arriving when the drain timeout ended it
	_, err := r.main.waitFor(ctx, time.Now().Add(r.o.drainTimeout), func() bool {
		d := r.main.totals().Delivered
		if d != last {
			last, lastChange = d, time.Now()
		}
		switch {
		case d >= pb.first+pb.sent.Load(): // the phase's earlier events are delivered too
			res.DrainEnd = "complete"
		case time.Since(lastChange) > 3*time.Second:
			res.DrainEnd = "stalled"
		default:
			return false
		}
		return true
	}, func() { prog.Update(int(r.main.totals().Delivered)) })
	prog.Finish(int(r.main.totals().Delivered))
	return err
}

func publishDone(res *personalResult, pb *publisher) {
	res.Published, res.PublishErrors = pb.sent.Load(), pb.errors.Load()
	res.PublishS = round3(pb.elapsed.Seconds())
	res.AchievedRate = round3(progress.PerSecond(int(res.Published), pb.elapsed))
	res.PublishLagMS = round3(float64(pb.maxLagUS.Load()) / 1000)
}

// personalTotals fills what arrived against what was stored, and the CPU
// per notification.
func (r *runner) personalTotals(res *personalResult, p *phaseResult, pb *publisher, m *merged) {
	if e := pb.firstErr.Load(); e != nil {
		p.addErrors("publish: ", *e)
	}
	res.Expected, res.Lost, res.Extra, res.LostUsers = lostExtra(pb.expected, m.perUser)
	for _, v := range m.perUser {
		res.Delivered += v
	}
	res.Foreign, res.Duplicates, res.Acks = m.counts.Foreign, m.counts.Dups, m.counts.Acks
	res.LatencyMS = m.latency.summary()
	res.Windows = m.windows.summaries(p.Started.UnixMicro())
	if n := float64(res.Delivered); n > 0 {
		res.CPUPerNotifUS = round3(p.cpuOf("") / n * 1e6)
		res.RedisPerNotUS = round3(p.cpuOf(roleRedis) / n * 1e6)
		res.EdgePerNotUS = round3(p.cpuOf(roleEdge) / n * 1e6)
		res.WirePerNotB = round3(p.wireBytesOf() / n)
		res.RedisCmds = p.redisCommands(n)
	}
}
