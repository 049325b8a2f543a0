package wsedge

import "time"

// pruneLoop deletes closed-session records older than
// Config.ClosedRetention from the store, every tenth of the retention (at
// least once a second, at most every 10 minutes). The records are for an
// operator looking back at recent disconnects; without pruning, an edge
// that has served millions of sessions would keep every one of them.
func (e *Edge) pruneLoop() {
	every := min(max(e.cfg.ClosedRetention/10, time.Second), 10*time.Minute)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-tick.C:
			e.pruneClosed(now)
		}
	}
}

func (e *Edge) pruneClosed(now time.Time) {
	n, err := e.store.PruneClosed(now.Add(-e.cfg.ClosedRetention))
	if err != nil {
		e.log.Warn("prune closed sessions", "err", err)
		return
	}
	e.m.pruned.Add(float64(n))
}
