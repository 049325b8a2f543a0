package wsedge

import (
	"context"
	"slices"
	"time"

	"github.com/heraldrt/herald/store"
	"github.com/redis/go-redis/v9"
)

// heartbeatLoop pings quiet clients, closes idle ones and those whose token
// expired, and forgets old connect-rate buckets.
func (e *Edge) heartbeatLoop() {
	tick := time.NewTicker(max(e.cfg.Heartbeat/5, 100*time.Millisecond))
	defer tick.Stop()
	pings := newWorkQueue[*session]()
	for range 4 {
		e.spawn(func() { e.pinger(pings) })
	}
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-tick.C:
			e.checkSessions(now, pings)
			e.limiter.sweep(now)
		}
	}
}

func (e *Edge) checkSessions(now time.Time, pings *workQueue[*session]) {
	nowMs := now.UnixMilli()
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.sessions {
		quiet := nowMs - s.lastRead.Load()
		switch {
		case nowMs >= s.expires.Load():
			s.close(StatusTokenExpired, "token expired: reconnect with a fresh token or send refresh before exp")
		case quiet >= e.cfg.IdleTimeout.Milliseconds():
			s.close(StatusIdle, "idle timeout")
		case quiet >= e.cfg.Heartbeat.Milliseconds() && !s.pinging.Swap(true):
			pings.push(s)
		}
	}
}

// pinger sends WebSocket pings; a pong (or any frame) counts as activity.
func (e *Edge) pinger(q *workQueue[*session]) {
	for {
		s, ok := q.pop(e.ctx)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Heartbeat)
		if err := s.conn.Ping(ctx); err == nil {
			s.touch()
		}
		cancel()
		s.pinging.Store(false)
	}
}

// ackFlushLoop copies ACK positions from the store to Redis, so that another
// edge can resume the device. Positions not yet copied survive a crash in
// the store and are copied after the restart.
// It runs under flushCtx, which Shutdown ends before its own final copy.
func (e *Edge) ackFlushLoop() {
	tick := time.NewTicker(e.cfg.AckFlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.flushCtx.Done():
			return
		case <-tick.C:
			e.flushAcks(e.flushCtx, e.cfg.AckFlushInterval/2)
		}
	}
}

// flushAcks copies the unflushed positions to Redis in one walk through
// them in key order; positions that turn dirty again behind the walk wait
// for the next one. With spread 0 (a drain, a recovery) it sends pipelines
// of 1000 back to back. Otherwise it spreads the walk over about spread, in
// pipelines of 256 to 1000 positions: one pipeline of 10,000 positions is
// 20,000 commands, which hold Redis (and every dispatcher's append behind
// them) and the edge's CPU for tens of milliseconds, and that shows in
// every notification's latency. One copy runs at a time.
func (e *Edge) flushAcks(ctx context.Context, spread time.Duration) error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	chunk, gap := 1000, time.Duration(0)
	if n := e.store.UnflushedLen(); spread > 0 && n > 0 {
		chunk = min(max((n+39)/40, 256), 1000)
		gap = spread / time.Duration((n+chunk-1)/chunk)
	}
	var after store.AckPosition
	for first := true; ctx.Err() == nil; first = false {
		if !first && gap > 0 {
			sleepCtx(ctx, gap)
		}
		ps, err := e.store.UnflushedAfter(after, chunk)
		if err != nil || len(ps) == 0 {
			return err
		}
		after = ps[len(ps)-1]
		err = e.call(ctx, "acks.flush", func(ctx context.Context) error {
			_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, pos := range ps {
					k := e.cfg.Space.Acks(pos.Tenant, pos.User, pos.Device)
					p.HSet(ctx, k, pos.Feed, formatPosition(pos.Epoch, pos.Seq))
					p.Expire(ctx, k, positionsTTL)
				}
				return nil
			})
			return err
		})
		if err != nil {
			e.m.ackFlushErrors.Inc()
			return err
		}
		if err := e.store.MarkFlushed(ps); err != nil {
			return err
		}
		e.m.acksFlushed.Add(float64(len(ps)))
		if len(ps) < chunk {
			return nil
		}
	}
	return ctx.Err()
}

// recover cleans up after a crash of the previous process on this data
// directory: sessions it had live lose their presence, as the reaper
// removes it (their users first, their records in the crashed edge's set
// after them, so that a removal that fails leaves the records to the
// repair or the dead-edge clean-up), and ACK positions it had not copied
// to Redis are copied now.
func (e *Edge) recover(ctx context.Context) error {
	live, err := e.store.LiveSessions()
	if err != nil {
		return err
	}
	sp := e.cfg.Space
	for chunk := range slices.Chunk(live, reapBatch) {
		batch := make([]gone, len(chunk))
		for i, ss := range chunk {
			s := &session{e: e, id: ss.ID, tenant: ss.Tenant, user: ss.User, device: ss.Device}
			batch[i] = s.gone()
			batch[i].edgeSet, batch[i].value = sp.EdgeSessions(ss.Edge), ss.Edge+" "+ss.ID
		}
		e.reap(ctx, batch)
		for _, ss := range chunk {
			e.store.CloseSession(ss.ID, 0, "edge crashed", time.Now())
		}
	}
	if len(live) > 0 {
		e.log.Info("recovered after a crash", "stale_sessions", len(live))
	}
	return e.flushAcks(ctx, 0)
}

// Shutdown drains the edge: it stops accepting, closes sessions with 1012
// in waves (so clients do not all reconnect to the other edges at once),
// flushes ACK positions to the store and to Redis, and stops every
// goroutine. The store stays open: its owner closes it. Safe to call twice.
func (e *Edge) Shutdown(ctx context.Context) error {
	var err error
	e.stopOnce.Do(func() { err = e.shutdown(ctx) })
	return err
}

func (e *Edge) shutdown(ctx context.Context) error {
	e.draining.Store(true)
	e.closeInWaves(ctx, 500, 20*time.Millisecond)
	done := make(chan struct{})
	go func() { e.closes.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		e.closeAllNow()
		<-done
	}
	e.reapAll(ctx)
	octx, ocancel := context.WithTimeout(context.Background(), 2*time.Second)
	e.writeOnline(octx) // every session has ended: removes this edge's counts, even past the drain's deadline
	ocancel()
	e.stopFlush() // the paced copy in progress, if any, stops at its next pipeline
	ferr := e.store.Flush(ctx)
	if err := e.flushAcks(ctx, 0); err != nil && ferr == nil {
		ferr = err
	}
	e.cancel()
	e.stopTimers()
	e.wg.Wait()
	e.deregister() // after the heartbeat stopped: none adds the edge back
	return ferr
}

// deregister takes the drained edge out of the live-edge registry, with
// its list of tenants, only if it left nothing in Redis for a survivor to
// clean: no record of a presence entry (a removal that failed, or did not
// run before the drain's deadline) and no online count it could not
// remove. Otherwise the edge stays registered without a heartbeat, so the
// other edges find it dead after the presence TTL and clean up after it
// (cleanEdge); an edge that restarts with the same id before then finds
// its own records in its online repair.
func (e *Edge) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	sp := e.cfg.Space
	e.mu.Lock()
	counts := len(e.onlineDirty)
	e.mu.Unlock()
	entries, err := e.rdb.SCard(ctx, sp.EdgeSessions(e.cfg.EdgeID)).Result()
	if err != nil || entries > 0 || counts > 0 {
		e.log.Warn("drained with presence or online counts left in Redis: the other edges remove them once this edge has missed its heartbeats for the presence TTL",
			"entries", entries, "online_counts", counts, "err", err)
		return
	}
	_, err = e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, sp.EdgeTenants(e.cfg.EdgeID))
		p.ZRem(ctx, sp.Edges(), e.cfg.EdgeID)
		return nil
	})
	if err != nil {
		e.log.Warn("could not leave the live-edge registry: the other edges remove this edge after the presence TTL", "err", err)
	}
}

func (e *Edge) closeInWaves(ctx context.Context, wave int, pause time.Duration) {
	for {
		e.mu.Lock()
		batch := make([]*session, 0, wave)
		for s := range e.sessions {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if !closed {
				batch = append(batch, s)
			}
			if len(batch) == wave {
				break
			}
		}
		e.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, s := range batch {
			s.close(StatusRestart, "edge is restarting: reconnect")
		}
		sleepCtx(ctx, pause)
		if ctx.Err() != nil {
			return
		}
	}
}

func (e *Edge) closeAllNow() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.sessions {
		s.conn.CloseNow()
	}
}
