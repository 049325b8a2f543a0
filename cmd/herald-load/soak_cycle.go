package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/progress"
)

// cycle runs one wave of clients: connect, one notification each, then
// (vanish) half the workers killed and the rest resetting their sockets,
// or (the last wave) a polite stop. It then waits for the edge's sessions
// to return to the baseline and samples the edge.
func (s *soaker) cycle(ctx context.Context, n int, vanish bool) (soakSample, error) {
	start := time.Now()
	sm := soakSample{Cycle: n, Clients: s.o.clients}
	cfg := fleetConfig{name: "soak" + strconv.Itoa(n), target: s.t, count: s.o.clients, users: s.o.clients,
		workers: s.o.workers, sourceBase: s.addrs, perAddr: s.o.perAddr, concurrency: s.o.concurrency, acks: s.o.acks,
		timeout: s.o.connectTimeout + s.o.deliverTimeout + 5*time.Minute}
	fl, err := startFleet(cfg)
	if err != nil {
		return sm, err
	}
	s.addrs = nextAddr(s.addrs, cfg.addrs()) // each cycle dials from fresh addresses
	err = s.wave(ctx, fl, &sm)
	if err == nil {
		// The edge's RSS with the wave's clients connected: live sessions
		// dominate it, so a leak shows as growth from cycle to cycle, while
		// the RSS after they left mostly says when the GC last ran.
		if loaded, rerr := s.read(ctx); rerr == nil {
			sm.LoadedRSSMB = loaded.RSSMB
		}
	}
	if err == nil && vanish {
		err = s.vanish(ctx, fl, &sm)
	}
	if _, serr := fl.stop(30 * time.Second); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return sm, err
	}
	s.settle(ctx, &sm)
	after, err := s.read(ctx)
	sm.Sessions, sm.FDs, sm.Goroutines, sm.RSSMB, sm.StoreMB = after.Sessions, after.FDs, after.Goroutines, after.RSSMB, after.StoreMB
	sm.ElapsedS = round3(time.Since(start).Seconds())
	return sm, err
}

// wave connects the fleet's clients and gives each one notification.
func (s *soaker) wave(ctx context.Context, fl *fleet, sm *soakSample) error {
	prog := progress.New(s.stderr, s.o.clients, "connected")
	fl.waitFor(ctx, time.Now().Add(s.o.connectTimeout), func() bool { return fl.totals().Welcomed >= int64(s.o.clients) },
		func() { prog.Update(int(fl.totals().Welcomed)) })
	prog.Finish(int(fl.totals().Welcomed))
	sm.Connected = fl.totals().Welcomed
	s.phase++
	run := s.o.run + "c" + strconv.Itoa(s.phase)
	if _, err := fl.do(ctx, workerCmd{Cmd: cmdPhase, Run: run, Kind: kindPersonal}, 30*time.Second); err != nil {
		return err
	}
	pb := newPublisher(s.t, run, s.o.clients, s.o.rate, time.Second, 500, s.o.idempotency)
	pb.total = s.o.clients // one each
	pb.run(ctx)
	if e := pb.firstErr.Load(); e != nil {
		s.rep.Errors = append(s.rep.Errors, fmt.Sprintf("cycle %d: publish: %s", sm.Cycle, *e))
	}
	_, err := fl.waitFor(ctx, time.Now().Add(s.o.deliverTimeout), func() bool { return fl.totals().Delivered >= pb.sent.Load() }, nil)
	if err != nil {
		return err
	}
	reports, err := fl.do(ctx, workerCmd{Cmd: cmdReport}, time.Minute)
	for _, rep := range reports {
		for _, c := range rep.PerUser {
			if c > 0 {
				sm.Received++
			}
		}
		for _, e := range rep.Errors {
			s.rep.note(fmt.Sprintf("cycle %d: client: %s", sm.Cycle, e))
		}
	}
	return err
}

// vanish kills the first half of the workers and has the rest reset
// every socket.
func (s *soaker) vanish(ctx context.Context, fl *fleet, sm *soakSample) error {
	half := len(fl.procs) / 2
	for k := range half {
		if err := fl.killWorker(k); err != nil {
			return err
		}
		sm.Killed += fl.procs[k].last - fl.procs[k].first
	}
	for _, p := range fl.procs[half:] {
		sm.Reset += p.last - p.first
	}
	replies, err := fl.do(ctx, workerCmd{Cmd: cmdVanish}, time.Minute)
	for _, m := range replies {
		for _, e := range m.Errors {
			s.rep.note(fmt.Sprintf("cycle %d: %s", sm.Cycle, e))
		}
	}
	return err
}

// settle waits until the edge's sessions are back at the baseline (at
// most --settle-timeout), then a little longer (at most 15 s) for its
// goroutines: a session's goroutines end just after it leaves the gauge.
func (s *soaker) settle(ctx context.Context, sm *soakSample) {
	start := time.Now()
	base := s.rep.Baseline
	sm.Settled = s.poll(ctx, start.Add(s.o.settleTimeout), func(now soakSample) bool { return now.Sessions <= base.Sessions })
	sm.SettleS = round3(time.Since(start).Seconds())
	if sm.Settled {
		s.poll(ctx, time.Now().Add(min(15*time.Second, s.o.settleTimeout)), func(now soakSample) bool {
			return now.Goroutines <= base.Goroutines+16
		})
	}
}

// poll reads the edge every 250 ms until done says so (true) or the
// deadline passes (false).
func (s *soaker) poll(ctx context.Context, deadline time.Time, done func(soakSample) bool) bool {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if now, err := s.read(ctx); err == nil && done(now) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}
