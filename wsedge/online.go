package wsedge

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Online counts, kept as counters rather than found by scans:
//
//   - connections: each edge writes how many sessions of each tenant it
//     holds into the field named after itself of keys.Online(tenant), at
//     most once a second for the tenants whose count changed, and removes
//     its fields when it drains; keys.EdgeTenants lists the tenants it
//     wrote, so that a dead edge's fields go with its presence (cleanEdge). The sum of the fields is the tenant's connections.
//   - users: keys.OnlineUsers(tenant) holds the users with a device online.
//     Every set-up adds its user (in the pipeline it sends anyway); the
//     removal of a presence entry that leaves the user no device removes
//     the user, after checking again that none came back meanwhile.

// onlineInterval is how often changed connection counts are written.
const onlineInterval = time.Second

// countOnlineLocked adds d to the tenant's sessions on this edge. e.mu is
// held.
func (e *Edge) countOnlineLocked(tenant string, d int) {
	if e.perTenant[tenant] += d; e.perTenant[tenant] <= 0 {
		delete(e.perTenant, tenant)
	}
	e.onlineDirty[tenant] = struct{}{}
}

// onlineLoop writes the changed counts until the edge stops; the drain
// writes the last ones (writeOnline after every session ended).
func (e *Edge) onlineLoop() {
	tick := time.NewTicker(onlineInterval)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
			e.writeOnline(e.ctx)
		}
	}
}

// writeOnline writes the counts of the tenants that changed since the last
// write in one pipeline; after a failure they are written next time.
func (e *Edge) writeOnline(ctx context.Context) {
	e.onlineMu.Lock() // one write at a time: the drain's last one lands last
	defer e.onlineMu.Unlock()
	e.mu.Lock()
	if len(e.onlineDirty) == 0 {
		e.mu.Unlock()
		return
	}
	counts := make(map[string]int, len(e.onlineDirty))
	for t := range e.onlineDirty {
		counts[t] = e.perTenant[t]
	}
	clear(e.onlineDirty)
	e.mu.Unlock()
	err := e.call(ctx, "online", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for t, n := range counts {
				if n > 0 {
					p.HSet(ctx, e.cfg.Space.Online(t), e.cfg.EdgeID, strconv.Itoa(n))
					// so that whoever cleans up after this edge finds every tenant it counted
					p.SAdd(ctx, e.cfg.Space.EdgeTenants(e.cfg.EdgeID), t)
				} else {
					p.HDel(ctx, e.cfg.Space.Online(t), e.cfg.EdgeID)
				}
			}
			return nil
		})
		return err
	})
	if err != nil {
		e.mu.Lock()
		for t := range counts {
			e.onlineDirty[t] = struct{}{}
		}
		e.mu.Unlock()
		e.log.Debug("write online counts", "tenants", len(counts), "err", err)
	}
}

// offline returns the users whose presence removal (the delIfOwner results
// in left) left them no device.
func offline(users []userKey, left []*redis.Cmd) []userKey {
	var out []userKey
	for i, c := range left {
		if n, err := c.Int64(); err == nil && n == 0 {
			out = append(out, users[i])
		}
	}
	return out
}

// dropOffline removes users from their tenant's online set, then adds
// back those that have a device online again (one may have connected
// since their last device left): removing first means a connect that lands
// in between is seen by the check.
func (e *Edge) dropOffline(ctx context.Context, users []userKey) {
	if len(users) == 0 {
		return
	}
	sp := e.cfg.Space
	lens := make([]*redis.IntCmd, len(users))
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			p.SRem(ctx, sp.OnlineUsers(u.tenant), u.user)
		}
		for i, u := range users {
			lens[i] = p.HLen(ctx, sp.Presence(u.tenant, u.user))
		}
		return nil
	})
	if err != nil {
		e.log.Warn("could not remove users gone offline from the online counts", "users", len(users), "err", err)
		return
	}
	var back []userKey
	for i, u := range users {
		if lens[i].Val() > 0 {
			back = append(back, u)
		}
	}
	if len(back) == 0 {
		return
	}
	_, err = e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range back {
			p.SAdd(ctx, sp.OnlineUsers(u.tenant), u.user)
		}
		return nil
	})
	if err != nil {
		e.log.Warn("could not count users online again", "users", len(back), "err", err)
	}
}
