package main

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/progress"
)

// broadcast publishes --rounds tenant-wide events, one at a time, and
// waits for each until every connected client has it (or the round
// timeout).
func (r *runner) broadcast(ctx context.Context) error {
	run, load0, err := r.setPhase(ctx, kindBroadcast, r.o.rounds)
	if err != nil {
		return err
	}
	pr := r.begin(ctx, "broadcast", run, load0)
	target := r.main.totals().Welcomed
	res := &broadcastResult{Clients: target}
	pr.res.Broadcast = res
	prog := progress.New(r.stderr, r.o.rounds, "rounds")
	stop := r.profile(ctx, pr.res, "broadcast", 0, time.Duration(r.o.rounds)*(r.o.roundGap+50*time.Millisecond))
	for i := range r.o.rounds {
		if ctx.Err() != nil {
			break
		}
		if err = r.round(ctx, res, run, i, target); err != nil {
			break
		}
		prog.Update(i + 1)
		sleepUntil(ctx, time.Now().Add(r.o.roundGap))
	}
	prog.Finish(len(res.Rounds))
	stop()
	m := r.reportsOf(r.end(ctx, pr))
	r.broadcastTotals(res, pr.res, m)
	var why []string
	if res.Complete < r.o.rounds {
		why = append(why, fmt.Sprintf("%d of %d rounds reached every client", res.Complete, r.o.rounds))
	}
	pr.res.verdict(why)
	r.rep.headline("broadcast", fmt.Sprintf("broadcast to %d clients: time until the last client has it", target),
		fmt.Sprintf("median %.1f ms, max %.1f ms (%d of %d rounds complete)", res.Median, res.Max, res.Complete, r.o.rounds), pr.res.OK)
	return err
}

// round publishes round i and waits until target clients have it.
func (r *runner) round(ctx context.Context, res *broadcastResult, run string, i int, target int64) error {
	_, err := broadcastRound(ctx, r.t, run, i, r.o.idempotency)
	if err != nil {
		res.Rounds = append(res.Rounds, roundResult{N: i, Of: target})
		return fmt.Errorf("round %d: %w", i, err)
	}
	_, err = r.main.waitFor(ctx, time.Now().Add(r.o.roundTimeout), func() bool {
		c, _ := r.main.round(i)
		return c >= target
	}, nil)
	count, maxUS := r.main.round(i)
	res.Rounds = append(res.Rounds, roundResult{N: i, Received: count, Of: target, LastMS: round3(float64(maxUS) / 1000),
		Complete: count >= target})
	return err
}

func (r *runner) broadcastTotals(res *broadcastResult, p *phaseResult, m *merged) {
	var lasts []float64
	for _, rr := range res.Rounds {
		res.Expected += rr.Of
		res.Lost += max(0, rr.Of-rr.Received)
		if rr.Complete {
			res.Complete++
			lasts = append(lasts, rr.LastMS)
			res.Max = max(res.Max, rr.LastMS)
		}
	}
	res.Median, res.P90 = medianP90(lasts)
	for _, v := range m.perUser {
		res.Delivered += v
	}
	res.Acks = m.counts.Acks
	res.LatencyMS = m.latency.summary()
	if res.Delivered > 0 {
		res.CPUPerNot = round3(p.cpuOf("") / float64(res.Delivered) * 1e6)
	}
}
