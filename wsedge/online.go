package wsedge

import (
	"context"
	"fmt"
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
//     wrote, so that a dead edge's fields go with its presence (cleanEdge).
//     The sum of the fields is the tenant's connections.
//   - users: keys.OnlineUsers(tenant) holds the users with a device online.
//     Every set-up adds its user (in the pipeline it sends anyway); the
//     removal of a presence entry that leaves the user no device removes
//     the user, after checking again that none came back meanwhile
//     (settleOffline). The record of the entry in the edge's set
//     (keys.EdgeSessions) goes in the round trip after the user's removal,
//     once Redis has answered it: a removal that fails, or an edge that
//     dies between the two, leaves the record, and the repair or the
//     dead-edge clean-up removes the user. That clean-up deletes the dead
//     edge's records only once its users are out, so a clean-up that fails
//     or dies half-way is done again at the next heartbeat.
//
// What no record covers (a Redis call that failed, a user taken out by an
// edge that died before it added them back, two edges' checks crossing,
// state left by older versions) is found by the repair (repairOnline): every
// OnlineRepairInterval (5s) each edge looks at up to repairBatch of its own presence records
// and up to repairBatch users of the online sets of its tenants
// (keys.EdgeTenants: those it counted, and those of the dead edges it
// cleaned up after), and corrects the set to what presence says.

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

// onlineLoop writes the changed counts, and repairs the online users, until
// the edge stops; the drain writes the last counts (writeOnline after every
// session ended).
func (e *Edge) onlineLoop() {
	tick := time.NewTicker(onlineInterval)
	defer tick.Stop()
	repairTick := time.NewTicker(e.cfg.OnlineRepairInterval)
	defer repairTick.Stop()
	var repair onlineRepair
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
			e.writeOnline(e.ctx)
		case <-repairTick.C:
			if !e.draining.Load() {
				e.repairOnline(e.ctx, &repair)
			}
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

// settleOffline removes users from their tenant's online set, then adds
// back those that have a device online again (one may have connected
// since their last device left): removing first means a connect that lands
// in between is seen by the check. then, if not nil, adds commands to the
// round trip after the removal, which is sent only once Redis has answered
// every removal: the records that let someone else redo the removal (an
// edge's set of its presence entries) go there, so that they outlive every
// removal that did not happen, even one that Redis refused alone or a node
// of a Cluster failed (a pipeline to several nodes has no order between
// them). It returns how many users it took out; an error means the removal
// or the records' round trip may not have happened.
func (e *Edge) settleOffline(ctx context.Context, users []userKey, then func(redis.Pipeliner)) (int, error) {
	back, err := e.takeOffline(ctx, users)
	if err != nil {
		return 0, err
	}
	if len(back) == 0 && then == nil {
		return len(users), nil
	}
	sp := e.cfg.Space
	cmds, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range back {
			p.SAdd(ctx, sp.OnlineUsers(u.tenant), u.user)
		}
		if then != nil {
			then(p)
		}
		return nil
	})
	if err == nil {
		return len(users) - len(back), nil
	}
	// The adds are not the caller's to redo: the repair adds them back
	// (repairOwn). The records are.
	if addErr := firstErr(cmds[:len(back)]); addErr != nil {
		e.log.Warn("could not count users online again", "users", len(back), "err", addErr)
	}
	if recErr := firstErr(cmds[len(back):]); recErr != nil {
		return 0, fmt.Errorf("remove the records of users gone offline: %w", recErr)
	}
	return len(users) - len(back), nil
}

// firstErr is the first error of cmds, if any.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// takeOffline is settleOffline's first round trip: it removes the users
// and returns those that have a device again.
func (e *Edge) takeOffline(ctx context.Context, users []userKey) ([]userKey, error) {
	if len(users) == 0 {
		return nil, nil
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
		return nil, fmt.Errorf("remove users gone offline from the online sets: %w", err)
	}
	var back []userKey
	for i, u := range users {
		if lens[i].Val() > 0 {
			back = append(back, u)
		}
	}
	return back, nil
}

// repairBatch bounds what each half of the online repair looks at per
// tick: this edge's presence records, and users of its tenants' online
// sets (SSCAN's COUNT; a small set comes whole).
const repairBatch = 256

// repairTenantScans bounds the tenant sets the repair scans per tick.
const repairTenantScans = 16

// onlineRepair is where the repair's two walks are (onlineLoop owns it).
type onlineRepair struct {
	own     uint64   // SSCAN cursor in keys.EdgeSessions of this edge
	tenants []string // tenants left to walk in this round, the current first
	users   uint64   // SSCAN cursor in the current tenant's online set
}

// repairOnline takes one bounded step of each walk, and logs what it
// corrected.
func (e *Edge) repairOnline(ctx context.Context, r *onlineRepair) {
	var added, removed int
	err := e.call(ctx, "online.repair", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		a, rm, err := e.repairOwn(ctx, r)
		added, removed = added+a, removed+rm
		if err != nil {
			return err
		}
		rm, err = e.repairTenants(ctx, r)
		removed += rm
		return err
	})
	if added+removed > 0 {
		e.m.onlineRepairAdded.Add(float64(added))
		e.m.onlineRepairRemoved.Add(float64(removed))
		e.log.Info("repaired the online users", "added", added, "removed", removed)
	}
	if err != nil {
		e.log.Debug("online repair failed", "err", err)
	}
}

// repairOwn walks this edge's presence records: a live session's user is
// added to the online set if missing; the entry of a session that is not
// live here any more (its removal failed, or its set-up's writes landed
// after it) is removed as the reaper would.
func (e *Edge) repairOwn(ctx context.Context, r *onlineRepair) (added, removed int, err error) {
	sp := e.cfg.Space
	members, cur, err := e.rdb.SScan(ctx, sp.EdgeSessions(e.cfg.EdgeID), r.own, "", repairBatch).Result()
	if err != nil {
		return 0, 0, err
	}
	r.own = cur
	var live []userKey
	var ended []gone
	for _, m := range members {
		rec, ok := parseMember(m)
		if !ok {
			continue
		}
		u := userKey{rec.tenant, rec.user}
		if e.isLive(rec) {
			live = append(live, u)
			continue
		}
		ended = append(ended, gone{key: sp.Presence(u.tenant, u.user), edgeSet: sp.EdgeSessions(e.cfg.EdgeID),
			device: rec.device, value: e.cfg.EdgeID + " " + rec.id, member: m, user: u})
	}
	if added, err = e.addOnline(ctx, live); err != nil {
		return 0, 0, err
	}
	removed, err = e.removePresence(ctx, ended)
	return added, removed, err
}

// isLive says whether the session is the device's live session here.
func (e *Edge) isLive(r presenceRecord) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.devices[deviceKey{r.tenant, r.user, r.device}]
	return s != nil && s.id == r.id
}

// addOnline adds users with a live session here to their online sets,
// then checks their presence: a user whose session ended meanwhile (and
// whose removal may have run before the add) is taken out again.
func (e *Edge) addOnline(ctx context.Context, users []userKey) (int, error) {
	if len(users) == 0 {
		return 0, nil
	}
	sp := e.cfg.Space
	adds := make([]*redis.IntCmd, len(users))
	lens := make([]*redis.IntCmd, len(users))
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			adds[i] = p.SAdd(ctx, sp.OnlineUsers(u.tenant), u.user)
			lens[i] = p.HLen(ctx, sp.Presence(u.tenant, u.user))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add live users to the online sets: %w", err)
	}
	added := 0
	var none []userKey
	for i, u := range users {
		switch {
		case adds[i].Val() == 1 && lens[i].Val() > 0:
			added++
		case adds[i].Val() == 1:
			none = append(none, u)
		}
	}
	_, err = e.settleOffline(ctx, none, nil)
	return added, err
}

// repairTenants walks the online sets of this edge's tenants, up to
// repairBatch users and repairTenantScans scans per tick, and takes out the
// users with no presence entry. A round starts from the tenants in
// keys.EdgeTenants of this edge.
func (e *Edge) repairTenants(ctx context.Context, r *onlineRepair) (int, error) {
	sp := e.cfg.Space
	if len(r.tenants) == 0 {
		ts, err := e.rdb.SMembers(ctx, sp.EdgeTenants(e.cfg.EdgeID)).Result()
		if err != nil {
			return 0, err
		}
		r.tenants, r.users = ts, 0
	}
	var users []userKey
	for scans := 0; scans < repairTenantScans && len(users) < repairBatch && len(r.tenants) > 0; scans++ {
		t := r.tenants[0]
		page, cur, err := e.rdb.SScan(ctx, sp.OnlineUsers(t), r.users, "", repairBatch).Result()
		if err != nil {
			return 0, err
		}
		if r.users = cur; cur == 0 {
			r.tenants = r.tenants[1:]
		}
		for _, u := range page {
			users = append(users, userKey{t, u})
		}
	}
	if len(users) == 0 {
		return 0, nil
	}
	lens := make([]*redis.IntCmd, len(users))
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			lens[i] = p.HLen(ctx, sp.Presence(u.tenant, u.user))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read presence of online users: %w", err)
	}
	var none []userKey
	for i, u := range users {
		if lens[i].Val() == 0 {
			none = append(none, u)
		}
	}
	return e.settleOffline(ctx, none, nil)
}
