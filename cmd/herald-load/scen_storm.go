package main

import (
	"context"
	"fmt"
	"time"

	"github.com/heraldrt/herald/internal/progress"
)

// storm: every client drops its connection at once (no close frame) and
// reconnects at a time of its own within --storm-within, resuming from its
// positions, while personal events keep coming. First every client gets
// one event, so that each has a position to resume from; then events at
// --storm-rate for --storm-lead before the drop, the window, and
// --storm-lead after.
func (r *runner) storm(ctx context.Context) error {
	run, load0, err := r.setPhase(ctx, kindPersonal, 0)
	if err != nil {
		return err
	}
	pr := r.begin(ctx, "storm", run, load0)
	res := &stormResult{Clients: r.main.totals().Welcomed, WithinS: r.o.stormWithin.Seconds(), Resume: r.t.Traits().Resume}
	pr.res.Storm = res
	// One event for every client, paced over the lead.
	prime := newPublisher(r.t, run, r.o.clients, float64(r.o.clients)/r.o.stormLead.Seconds(), r.o.stormLead, r.o.batch, r.o.idempotency)
	prime.total = r.o.clients
	if _, err := r.publishAndDrain(ctx, prime, "storm: one each"); err != nil {
		return err
	}
	pb := newPublisher(r.t, run, r.o.clients, r.o.stormRate, 2*r.o.stormLead+r.o.stormWithin, r.o.batch, r.o.idempotency)
	pb.first, pb.expected = int64(prime.total), prime.expected
	errc := make(chan error, 1)
	go func() { errc <- r.drop(ctx, res) }()
	pres, perr := r.publishAndDrain(ctx, pb, "storm")
	if err := <-errc; err != nil {
		return err
	}
	m := r.reportsOf(r.end(ctx, pr))
	res.Personal = *pres
	r.personalTotals(&res.Personal, pr.res, pb, m)
	res.Personal.Published += prime.sent.Load()
	res.Personal.PublishErrors += prime.errors.Load()
	res.WelcomeMS = m.storm.summary()
	res.Reconnected, res.Resumed = m.counts.Storm.Welcomes, m.counts.Storm.Resumed
	res.LastWelcomeS = round3(float64(m.counts.Storm.LastUS) / 1e6)
	lost := fmt.Sprintf("lost %d", res.Personal.Lost)
	if !res.Resume {
		res.NotRecoverable, res.Personal.Lost = res.Personal.Lost, 0
		lost = fmt.Sprintf("lost n/a (%d not recoverable: no history to resume from)", res.NotRecoverable)
	}
	pr.res.verdict(judgeStorm(res))
	r.rep.headline("storm", fmt.Sprintf("reconnect storm: %d clients dropped at once, back within %s", res.Clients, r.o.stormWithin),
		fmt.Sprintf("%d reconnected, %s resumed, %s, last welcome %.2f s after the drop (p99 %.0f ms)",
			res.Reconnected, res.resumedText(), lost, res.LastWelcomeS, res.WelcomeMS.P99), pr.res.OK)
	return perr
}

// drop waits --storm-lead, has every worker drop every connection at the
// same moment, and waits until every client has its reconnect's welcome
// (or the connect timeout).
func (r *runner) drop(ctx context.Context, res *stormResult) error {
	if sleepUntil(ctx, time.Now().Add(r.o.stormLead)) != nil {
		return nil
	}
	at := time.Now().Add(200 * time.Millisecond)
	cmd := workerCmd{Cmd: cmdStorm, AtUS: at.UnixMicro(), Within: r.o.stormWithin.Milliseconds()}
	if _, err := r.main.do(ctx, cmd, 30*time.Second); err != nil {
		return err
	}
	prog := progress.New(r.stderr, int(res.Clients), "reconnected")
	storm := func() int64 {
		if s := r.main.totals().Storm; s != nil {
			return s.Welcomes
		}
		return 0
	}
	_, err := r.main.waitFor(ctx, at.Add(r.o.connectTimeout), func() bool { return storm() >= res.Clients },
		func() { prog.Update(int(storm())) })
	prog.Finish(int(storm()))
	return err
}

// judgeStorm says why a storm missed: a client that did not come back or
// (a target that resumes) did not resume, or an event lost.
func judgeStorm(res *stormResult) []string {
	var why []string
	if res.Reconnected < res.Clients {
		why = append(why, fmt.Sprintf("%d of %d clients reconnected", res.Reconnected, res.Clients))
	}
	if res.Resume && res.Resumed < res.Reconnected {
		why = append(why, fmt.Sprintf("%d of %d reconnects resumed", res.Resumed, res.Reconnected))
	}
	why = append(why, judgePersonal(&res.Personal)...)
	return why
}
