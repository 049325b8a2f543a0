package wsedge

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence removal in batches. Every session that ends removes its
// presence entry from Redis. In a disconnect storm (a network blip, a
// drained edge, a load balancer that drops everyone) that is thousands of
// round trips at once, each holding a pooled Redis connection that the
// reconnecting sessions' set-ups need, and a slow Redis call each: enough
// to open the breaker and refuse the reconnects. So ended sessions queue
// their removal, and one reaper sends them in pipelines of up to
// reapBatch. The script removes an entry only while it still names the
// ended session, so a removal sent after the device reconnected (here or
// elsewhere) leaves the new entry alone.

const reapBatch = 512

// errRetry: the script was not loaded (Redis restarted); it is now.
var errRetry = errors.New("presence script reloaded: retry")

// gone is one ended session's presence entry.
type gone struct {
	key, edgeSet, device, value, member string
	user                                userKey
}

func (s *session) gone() gone {
	sp := s.e.cfg.Space
	return gone{key: sp.Presence(s.tenant, s.user), edgeSet: sp.EdgeSessions(s.e.cfg.EdgeID),
		device: s.device, value: s.presenceOwner(), member: s.presenceMember(), user: userKey{s.tenant, s.user}}
}

// presenceReaper sends the queued removals until the edge stops; Shutdown
// sends what is left (reapAll).
func (e *Edge) presenceReaper() {
	buf := make([]gone, 0, reapBatch)
	for {
		g, ok := e.goneQ.pop(e.ctx)
		if !ok {
			return
		}
		buf = e.goneQ.take(append(buf[:0], g), reapBatch-1)
		e.reap(e.ctx, buf)
	}
}

// reapAll sends every queued removal (a drain).
func (e *Edge) reapAll(ctx context.Context) {
	buf := make([]gone, 0, reapBatch)
	for ctx.Err() == nil {
		if buf = e.goneQ.take(buf[:0], reapBatch); len(buf) == 0 {
			return
		}
		e.reap(ctx, buf)
	}
}

// reap removes a batch of presence entries, with one retry after a
// failure; entries it cannot remove stay in the edge's set, where the
// online repair (repairOwn) finds them, and the dead-edge clean-up if this
// edge dies. A device's next connect replaces its entry too.
func (e *Edge) reap(ctx context.Context, batch []gone) {
	for attempt := range 2 {
		if attempt > 0 {
			sleepCtx(ctx, 200*time.Millisecond)
		}
		err := e.call(ctx, "presence", func(ctx context.Context) error {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := e.removePresence(cctx, batch)
			return err
		})
		if err == nil {
			e.m.presenceRemoved.Add(float64(len(batch)))
			return
		}
		if ctx.Err() != nil {
			break
		}
		e.log.Warn("could not remove presence entries of ended sessions", "entries", len(batch), "attempt", attempt+1, "err", err)
	}
	e.m.presenceRemoveErrors.Add(float64(len(batch)))
}

// removePresence removes the entries in one round trip, then, in a second
// (settleOffline), the users they left with no device from the online sets
// and, in a third once Redis answered the second, the entries' records in
// the edge's set: every step can be sent again, and the records stay until
// the users are out. It returns how many users it took out.
func (e *Edge) removePresence(ctx context.Context, batch []gone) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	left := make([]*redis.Cmd, len(batch))
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range batch {
			left[i] = delIfOwner.EvalSha(ctx, p, []string{g.key}, g.device, g.value)
		}
		return nil
	})
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = delIfOwner.Load(ctx, e.rdb).Err(); err == nil {
			err = errRetry
		}
	}
	if err != nil {
		return 0, err
	}
	users := make([]userKey, len(batch))
	for i, g := range batch {
		users[i] = g.user
	}
	return e.settleOffline(ctx, offline(users, left), func(p redis.Pipeliner) {
		for _, g := range batch {
			p.SRem(ctx, g.edgeSet, g.member)
		}
	})
}
