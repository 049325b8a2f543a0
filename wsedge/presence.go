package wsedge

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/pubsub"
	"github.com/redis/go-redis/v9"
)

// Presence: the hash keys.Presence(tenant, user) maps each online device to
// "<edge> <session>"; the set keys.EdgeSessions(edge) lists what an edge
// owns, so that when an edge stops heartbeating in keys.Edges(), any other
// edge removes its entries.

// delIfOwner removes a presence field only when it still names the session
// (the device may have moved to another edge meanwhile). KEYS[1] is the
// user's presence hash, the only key, so the script runs on a Redis
// Cluster too (the edge's set of its entries, keys.EdgeSessions, is in
// another slot: callers SREM it beside the script). ARGV[2] is the owner,
// "<edge> <session>"; the value goes on with the session's start
// (" <unix ms>"). It returns how many devices the user still has online.
var delIfOwner = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and (v == ARGV[2] or string.sub(v, 1, #ARGV[2] + 1) == ARGV[2] .. ' ') then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return redis.call('HLEN', KEYS[1])`)

// presenceValue is the session's presence entry: "<edge> <session> <since
// unix ms>".
func (s *session) presenceValue() string {
	return s.presenceOwner() + " " + strconv.FormatInt(s.since, 10)
}

// presenceOwner is the part of the entry that names the session.
func (s *session) presenceOwner() string { return s.e.cfg.EdgeID + " " + s.id }

// presenceMember is the edge-set member naming a presence field.
func (s *session) presenceMember() string {
	return s.tenant + "\x00" + s.user + "\x00" + s.device + "\x00" + s.id
}

// presenceRecord is a parsed edge-set member (presenceMember).
type presenceRecord struct{ tenant, user, device, id string }

// parseMember parses an edge-set member; false for one not in its format.
func parseMember(m string) (presenceRecord, bool) {
	parts := strings.Split(m, "\x00")
	if len(parts) != 4 {
		return presenceRecord{}, false
	}
	return presenceRecord{parts[0], parts[1], parts[2], parts[3]}, true
}

// replaceElsewhere asks the other edges to close the session this device
// had before, if presence says one was open on another edge (a session of
// this edge was replaced by register already). The request names the old
// session exactly, so it never closes a newer one. Best effort: if it is
// lost, the old session ends by itself when its connection is found dead.
func (e *Edge) replaceElsewhere(s *session, prev string) {
	if prev == "" || strings.HasPrefix(prev, e.cfg.EdgeID+" ") {
		return
	}
	msg := controlReplace + "\x00" + s.tenant + "\x00" + s.user + "\x00" + s.device + "\x00" + prev
	err := e.call(e.ctx, "edges.control", func(ctx context.Context) error {
		return pubsub.Publish(ctx, e.rdb, e.cfg.Space.EdgeControl(), msg)
	})
	if err != nil {
		e.log.Warn("could not ask other edges to close a replaced session", "session", s.id, "err", err)
	}
}

// controlReplace starts a control message "replace\0tenant\0user\0device\0presence value".
const controlReplace = "replace"

// onControl handles a message on the edges' control channel.
func (e *Edge) onControl(payload string) {
	parts := strings.Split(payload, "\x00")
	if tenant, user, ok := inbox.ParseAnnouncement(parts); ok {
		e.announceUnread(tenant, user)
		return
	}
	if len(parts) != 5 || parts[0] != controlReplace {
		e.log.Warn("unknown edge control message", "payload", clipReason(payload))
		return
	}
	e.mu.Lock()
	old := e.devices[deviceKey{parts[1], parts[2], parts[3]}]
	e.mu.Unlock()
	if old != nil && old.presenceValue() == parts[4] {
		e.m.replacedRemote.Inc()
		old.close(StatusReplaced, "replaced by a new session of this device on another edge")
	}
}

// positions returns the device's known ACK positions per feed: the local
// store's and the one in Redis (written by whichever edge served the device
// last). The caller picks the best one for the feed's current epoch.
func (e *Edge) positions(ctx context.Context, s *session) (map[string][]events.Position, error) {
	out, _, err := e.localPositions(s)
	if err != nil {
		return nil, err
	}
	var remote map[string]string
	err = e.call(ctx, "acks.read", func(ctx context.Context) (err error) {
		remote, err = e.rdb.HGetAll(ctx, e.cfg.Space.Acks(s.tenant, s.user, s.device)).Result()
		return err
	})
	if err != nil {
		return nil, err
	}
	addPositions(out, remote)
	return out, nil
}

// localPositions is the device's positions in this edge's store, and the
// set of feeds they are for.
func (e *Edge) localPositions(s *session) (map[string][]events.Position, map[string]bool, error) {
	local, err := e.store.Acks(s.tenant, s.user, s.device)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string][]events.Position, len(local)+2)
	known := make(map[string]bool, len(local))
	for feed, p := range local {
		out[feed] = append(out[feed], events.Position{Epoch: p.Epoch, Seq: p.Seq})
		known[feed] = true
	}
	return out, known, nil
}

// addPositions adds the positions of an acks hash (feed -> "<epoch>:<seq>").
func addPositions(out map[string][]events.Position, remote map[string]string) {
	for feed, v := range remote {
		if p, ok := parsePosition(v); ok {
			out[feed] = append(out[feed], p)
		}
	}
}

//go:embed connect.lua
var connectSrc string

// connectScript is the connect's work in the user's slot (connect.lua).
var connectScript = redis.NewScript(connectSrc)

// positionsTTL is how long Redis keeps a device's ACK positions (and the
// user's device set) after the device's last connect or ACK flush.
const positionsTTL = 30 * 24 * time.Hour

// connectPositions is positions for a connect, in one round trip with the
// rest of the connect's Redis work (connect.lua, and the edge's and the
// tenant's sets beside it): the session's presence, the device's connect
// time in the user's device set and, for each feed in heads that the
// device has no local position for, the feed's newest position as its
// first (HSETNX: a position already in Redis stays, and is what the
// script's HGETALL, run first, returns). A first position set this way is
// returned as the device's position, so the device starts from exactly
// what Redis says, and another edge it moves to replays from the same
// place.
//
// pending, when not nil, is the user feed, which this connect subscribed to
// (hub.acquirePending): the script reads its newest position too, which is
// returned as tip for the caller to settle the feed with, and is the
// device's first position for it when it needs one.
//
// What the reply asks for beyond that (closing the device's session on
// another edge, evicting devices past the cap) is left to the caller's
// followUp, to run once the feed is settled: other sessions of the user
// wait on a pending feed.
func (e *Edge) connectPositions(ctx context.Context, s *session, heads []*feedState, pending *feedState) (connectResult, error) {
	var res connectResult
	out, local, err := e.localPositions(s)
	if err != nil {
		return res, err
	}
	sp := e.cfg.Space
	readTip, tipFirst := "", ""
	if pending != nil {
		readTip = "1"
	}
	args := []any{s.device, s.presenceValue(), time.Now().UnixMilli(), int64(positionsTTL / time.Second),
		-int64(e.cfg.MaxDevicesPerUser) - 1, readTip, ""}
	var firsts []events.Position // the known first positions, in ARGV's order
	var firstFeeds []string
	for _, fs := range heads {
		switch {
		case local[fs.name]:
		case fs == pending:
			tipFirst = fs.name
		default:
			fs.mu.Lock()
			pos := events.Position{Epoch: fs.epoch, Seq: fs.last}
			fs.mu.Unlock()
			if pos.Epoch == "" { // the feed does not exist yet: all of it is new to the device
				pos = events.Position{Epoch: anyEpoch}
			}
			firsts, firstFeeds = append(firsts, pos), append(firstFeeds, fs.name)
			args = append(args, fs.name, formatPosition(pos.Epoch, pos.Seq))
		}
	}
	args[6] = tipFirst
	ks := []string{sp.Acks(s.tenant, s.user, s.device), sp.Presence(s.tenant, s.user),
		sp.Devices(s.tenant, s.user), sp.FeedMeta(keys.UserFeed(s.tenant, s.user))}
	var reply []any
	err = e.call(ctx, "acks.read", func(ctx context.Context) error {
		for attempt := 0; ; attempt++ {
			p := e.rdb.Pipeline()
			run := connectScript.EvalSha(ctx, p, ks, args...)
			p.SAdd(ctx, sp.EdgeSessions(e.cfg.EdgeID), s.presenceMember())
			p.SAdd(ctx, sp.OnlineUsers(s.tenant), s.user)
			_, err := p.Exec(ctx)
			if attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				// Redis restarted or is new: load the script and send it all
				// again (every write in the round trip is idempotent)
				if err := connectScript.Load(ctx, e.rdb).Err(); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			reply, err = run.Slice()
			return err
		}
	})
	if err != nil {
		return res, err
	}
	r, err := parseConnectReply(reply, len(firsts), tipFirst != "")
	if err != nil {
		return res, fmt.Errorf("connect script: %w", err)
	}
	if pending != nil {
		res.tip = r.tip
	}
	res.followUp = func(ctx context.Context) {
		e.replaceElsewhere(s, r.prev)
		e.evictDevices(ctx, s, r.over)
	}
	addPositions(out, r.acks)
	if r.tipSet {
		pos := res.tip
		if pos.Epoch == "" {
			pos = events.Position{Epoch: anyEpoch}
		}
		out[tipFirst] = append(out[tipFirst], pos)
	}
	for i, set := range r.set {
		if set {
			out[firstFeeds[i]] = append(out[firstFeeds[i]], firsts[i])
		}
	}
	res.positions = out
	return res, nil
}

// connectResult is what connectPositions found.
type connectResult struct {
	positions map[string][]events.Position
	tip       events.Position // the pending user feed's newest position
	followUp  func(ctx context.Context)
}

// connectReply is connect.lua's reply.
type connectReply struct {
	acks   map[string]string
	prev   string // the device's presence before, if any
	over   []redis.Z
	tip    events.Position // the user feed's epoch ("" for none) and seq, when read
	tipSet bool            // the user feed's first position was written
	set    []bool          // each known first position was written
}

func parseConnectReply(res []any, firsts int, tipFirst bool) (connectReply, error) {
	var r connectReply
	want := 5 + firsts
	if tipFirst {
		want++
	}
	if len(res) != want {
		return r, fmt.Errorf("%d values, want %d", len(res), want)
	}
	flat, _ := res[0].([]any)
	r.acks = make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		r.acks[k] = v
	}
	r.prev, _ = res[1].(string)
	over, _ := res[2].([]any)
	for i := 0; i+1 < len(over); i += 2 {
		m, _ := over[i].(string)
		sc, _ := over[i+1].(string)
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			return r, fmt.Errorf("device score %q: %w", sc, err)
		}
		r.over = append(r.over, redis.Z{Member: m, Score: score})
	}
	if epoch, _ := res[3].(string); epoch != "" {
		r.tip.Epoch = epoch
		if seq, _ := res[4].(string); seq != "" {
			n, err := strconv.ParseUint(seq, 10, 64)
			if err != nil {
				return r, fmt.Errorf("user feed seq %q: %w", seq, err)
			}
			r.tip.Seq = n
		}
	}
	rest := res[5:]
	if tipFirst {
		r.tipSet = rest[0] == int64(1)
		rest = rest[1:]
	}
	for _, v := range rest {
		r.set = append(r.set, v == int64(1))
	}
	return r, nil
}

// anyEpoch is the epoch of a position stored for a feed that did not exist
// yet: the device has seen nothing of it, so it starts from the first entry
// of whatever epoch the feed gets.
const anyEpoch = "*"

// bestPosition picks the highest position in the given epoch (a position
// for anyEpoch counts as seq 0 of it); found is false when there is none,
// other is true when there are only positions of other epochs.
func bestPosition(ps []events.Position, epoch string) (seq uint64, found, other bool) {
	for _, p := range ps {
		switch {
		case p.Epoch == epoch:
			seq, found = max(seq, p.Seq), true
		case p.Epoch == anyEpoch:
			found = true
		default:
			other = true
		}
	}
	return seq, found, other && !found
}

func formatPosition(epoch string, seq uint64) string {
	return epoch + ":" + strconv.FormatUint(seq, 10)
}

func parsePosition(v string) (events.Position, bool) {
	epoch, num, ok := strings.Cut(v, ":")
	seq, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil || epoch == "" {
		return events.Position{}, false
	}
	return events.Position{Epoch: epoch, Seq: seq}, true
}

// presenceLoop heartbeats this edge in the live-edge registry and cleans up
// after edges that stopped.
func (e *Edge) presenceLoop() {
	tick := time.NewTicker(e.cfg.PresenceTTL / 3)
	defer tick.Stop()
	for {
		e.heartbeatEdge()
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (e *Edge) heartbeatEdge() {
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	sp := e.cfg.Space
	now := time.Now()
	err := e.call(ctx, "edge.heartbeat", func(ctx context.Context) error {
		return e.rdb.ZAdd(ctx, sp.Edges(), redis.Z{Score: float64(now.UnixMilli()), Member: e.cfg.EdgeID}).Err()
	})
	if err != nil {
		e.log.Warn("edge heartbeat failed", "err", err)
		return
	}
	// Cleaning up after dead edges goes through the breaker too, so a frozen
	// Redis costs one failed call, not one per dead edge and session.
	err = e.call(ctx, "presence.clean", func(ctx context.Context) error {
		dead, err := e.rdb.ZRangeByScore(ctx, sp.Edges(), &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(now.Add(-e.cfg.PresenceTTL).UnixMilli(), 10),
		}).Result()
		for _, id := range dead {
			if err == nil {
				err = e.cleanEdge(ctx, id)
			}
		}
		return err
	})
	if err != nil {
		e.log.Debug("dead-edge clean-up failed", "err", err)
	}
}

// cleanEdge removes the presence entries of a dead edge and its online
// counts in one pipeline, then its users left with no device from the
// online sets and, once Redis answered that, the edge's records: if
// anything fails, or this edge dies in between, the records are still
// there and the next clean-up does it all again (each step can be sent
// twice). This edge adopts the dead edge's tenants for its online repair.
func (e *Edge) cleanEdge(ctx context.Context, edge string) error {
	sp := e.cfg.Space
	members, err := e.rdb.SMembers(ctx, sp.EdgeSessions(edge)).Result()
	if err != nil {
		return err
	}
	counted, err := e.rdb.SMembers(ctx, sp.EdgeTenants(edge)).Result()
	if err != nil {
		return err
	}
	var left []*redis.Cmd
	var users []userKey
	tenants := map[string]bool{}
	for _, t := range counted {
		tenants[t] = true
	}
	_, err = e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range members {
			r, ok := parseMember(m)
			if !ok {
				continue
			}
			left = append(left, delIfOwner.Eval(ctx, p, // Eval: a pipeline cannot fall back from EVALSHA
				[]string{sp.Presence(r.tenant, r.user)}, r.device, edge+" "+r.id))
			users = append(users, userKey{r.tenant, r.user})
			tenants[r.tenant] = true
		}
		for t := range tenants {
			p.HDel(ctx, sp.Online(t), edge)
		}
		return nil
	})
	if err != nil {
		return err
	}
	adopt := make([]any, 0, len(tenants))
	for t := range tenants {
		adopt = append(adopt, t)
	}
	_, err = e.settleOffline(ctx, offline(users, left), func(p redis.Pipeliner) {
		if len(adopt) > 0 && !e.draining.Load() { // a drained edge deletes its set, and must not get it back
			p.SAdd(ctx, sp.EdgeTenants(e.cfg.EdgeID), adopt...)
		}
		p.Del(ctx, sp.EdgeSessions(edge))
		p.Del(ctx, sp.EdgeTenants(edge)) // apart: two slots on a cluster
		p.ZRem(ctx, sp.Edges(), edge)
	})
	if err != nil {
		return err
	}
	e.m.deadEdges.Inc()
	e.log.Info("cleaned presence of a dead edge", "dead_edge", edge, "entries", len(members))
	return nil
}

// firstPositionLocked notes the position a device starts a feed from when
// it has none, for saveFirstPositions to write to Redis.
func (s *session) firstPositionLocked(feed, epoch string, seq uint64) {
	s.first = append(s.first, events.Position{Epoch: epoch, Seq: seq})
	s.firstFeeds = append(s.firstFeeds, feed)
}

// saveFirstPositions writes the device's first positions to Redis, without
// overwriting a position another edge wrote meanwhile (HSETNX). Redis is
// where every edge, this one included, reads them at the next connect, so
// they do not go through the store (whose hand-off would copy them to Redis
// a second time) unless this write fails: then the store keeps them and
// hands them off once Redis is back.
func (e *Edge) saveFirstPositions(s *session) error {
	s.mu.Lock()
	first, feeds := s.first, s.firstFeeds
	s.first, s.firstFeeds = nil, nil
	s.mu.Unlock()
	if len(first) == 0 {
		return nil
	}
	err := e.writeFirstPositions(s, first, feeds)
	if err != nil {
		for i, pos := range first {
			e.saveAck(s, feeds[i], pos.Epoch, pos.Seq)
		}
	}
	return err
}

func (e *Edge) writeFirstPositions(s *session, first []events.Position, feeds []string) error {
	k := e.cfg.Space.Acks(s.tenant, s.user, s.device)
	return e.call(e.ctx, "acks.flush", func(ctx context.Context) error {
		_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pos := range first {
				p.HSetNX(ctx, k, feeds[i], formatPosition(pos.Epoch, pos.Seq))
			}
			p.Expire(ctx, k, positionsTTL)
			return nil
		})
		return err
	})
}
