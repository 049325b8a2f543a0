package wsedge

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/redis/go-redis/v9"
)

// Client limits: what one client can cost the edge and Redis
// (docs/security.md).
//
//   - Token buckets per session on client frames and their bytes, and on
//     pub frames and their bytes (before any Gate rule). Past one: an error
//     frame rate_limited, then close with 4029; the session's later frames
//     are read and dropped until the connection ends.
//   - The upstream stream is bounded by length (MAXLEN ~ on XADD) and by age
//     (XTRIM MINID ~ in the same round trip).
//   - Topic subscriptions per session are capped (too_many_subscriptions).
//   - unsub deletes the device's position of the topic (store and Redis).
//   - Devices with positions in Redis are capped per user: the connect
//     round trip records the device's connect time in keys.Devices, and when
//     the user has more devices than allowed, the least recently connected
//     ones that are offline lose their positions.

// The token buckets of a session.
const (
	limitFrames = iota
	limitBytes
	limitPubs
	limitPubBytes
	numLimits
)

// limitReasons are the audit reasons of the buckets, and the text of their
// error frames.
var limitReasons = [numLimits]struct{ reason, msg string }{
	limitFrames:   {"frame_rate", "too many frames per second"},
	limitBytes:    {"byte_rate", "too many bytes per second"},
	limitPubs:     {"pub_rate", "too many pub frames per second"},
	limitPubBytes: {"pub_byte_rate", "too many pub bytes per second"},
}

// Audit reasons of the other limits.
const (
	auditTooManySubs    = "too_many_subscriptions"
	auditDevicesEvicted = "devices_evicted"
)

// fillClientLimits fills the Client limits block of Config (ReadLimit is
// filled already).
func (c *Config) fillClientLimits() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ClientFrameRate, 200)
	def(&c.ClientFrameBurst, 2000)
	def(&c.ClientByteRate, 256<<10)
	def(&c.ClientByteBurst, 1<<20)
	def(&c.PubRate, 10)
	def(&c.PubBurst, 20)
	def(&c.PubByteRate, 64<<10)
	def(&c.PubByteBurst, 256<<10)
	// A bucket smaller than the largest frame would refuse that frame forever.
	c.ClientFrameBurst, c.PubBurst = max(c.ClientFrameBurst, 1), max(c.PubBurst, 1)
	c.ClientByteBurst = max(c.ClientByteBurst, int(c.ReadLimit))
	c.PubByteBurst = max(c.PubByteBurst, int(c.ReadLimit))
	if c.UpstreamMaxLen <= 0 {
		c.UpstreamMaxLen = 100_000
	}
	if c.UpstreamMaxAge <= 0 {
		c.UpstreamMaxAge = 24 * time.Hour
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = 64
	}
	if c.MaxDevicesPerUser <= 0 {
		c.MaxDevicesPerUser = 32
	}
}

// clientLimits are a session's token buckets. Its reader goroutine owns
// them, on its stack: no lock, no allocation, six words per session. They
// refill lazily, when a frame arrives, from the time of the frame that
// touch has just stored (milliseconds). Tokens are counted in thousandths,
// so that a refill of whole milliseconds at a whole rate per second is
// exact.
type clientLimits struct {
	last    int64            // unix ms of the last refill
	tokens  [numLimits]int64 // thousandths of a frame or a byte
	tripped bool             // a bucket ran dry: the session is closing
}

func (e *Edge) newClientLimits(now int64) clientLimits {
	l := clientLimits{last: now}
	for k := range l.tokens {
		_, burst := e.bucket(k)
		l.tokens[k] = burst * 1000
	}
	return l
}

// bucket returns the rate per second (<0: no limit) and burst of bucket k.
func (e *Edge) bucket(k int) (rate, burst int64) {
	c := &e.cfg
	switch k {
	case limitFrames:
		return int64(c.ClientFrameRate), int64(c.ClientFrameBurst)
	case limitBytes:
		return int64(c.ClientByteRate), int64(c.ClientByteBurst)
	case limitPubs:
		return int64(c.PubRate), int64(c.PubBurst)
	default:
		return int64(c.PubByteRate), int64(c.PubByteBurst)
	}
}

// admit accounts for a client frame of size bytes. It reports false when
// the frame must be dropped: a bucket ran dry (the session is then closed
// with 4029) or already had.
func (l *clientLimits) admit(s *session, size int) bool {
	if l.tripped {
		return false
	}
	now := s.lastRead.Load()
	elapsed := max(now-l.last, 0) // a wall clock stepping back refills nothing
	l.last = now
	e := s.e
	for k := range l.tokens {
		rate, burst := e.bucket(k)
		l.tokens[k] = refill(l.tokens[k], rate, burst, elapsed)
	}
	return l.take(s, limitFrames, 1) && l.take(s, limitBytes, int64(size))
}

// admitPub accounts for a pub frame of size bytes, after admit took it.
func (l *clientLimits) admitPub(s *session, size int) bool {
	return l.take(s, limitPubs, 1) && l.take(s, limitPubBytes, int64(size))
}

func refill(tokens, rate, burst, elapsed int64) int64 {
	full := burst * 1000
	if rate <= 0 || elapsed > (full-tokens)/rate {
		return full
	}
	return tokens + elapsed*rate // at most full: no overflow
}

// take takes n tokens from bucket k, or trips the limit.
func (l *clientLimits) take(s *session, k int, n int64) bool {
	if rate, _ := s.e.bucket(k); rate < 0 {
		return true
	}
	if l.tokens[k] >= n*1000 {
		l.tokens[k] -= n * 1000
		return true
	}
	l.tripped = true
	s.e.tripLimit(s, k)
	return false
}

// tripLimit closes a session that ran a bucket dry: an error frame, then
// 4029, and an audit line.
func (e *Edge) tripLimit(s *session, k int) {
	e.m.limited[k].Inc()
	r := limitReasons[k]
	rate, burst := e.bucket(k)
	e.audit(r.reason, s.who(), fmt.Sprintf("rate %d/s burst %d", rate, burst))
	b := s.frame(events.ErrorFrame{T: events.FrameError, Code: "rate_limited",
		Msg: r.msg + ": reconnect later, with backoff"})
	s.sendNow(b)
	s.close(StatusTooMany, r.msg)
}

// sendNow writes one frame at once, from the reader goroutine, ahead of the
// session's queue: the error frame before a close for a limit, which a
// queued frame could lose to the close frame. It waits at most a second.
func (s *session) sendNow(frame []byte) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if s.fc != nil {
		s.fc.writeNow(frame, time.Second)
		return
	}
	ctx, cancel := context.WithTimeout(s.e.ctx, time.Second)
	defer cancel()
	s.conn.Write(ctx, s.msgType(), frame)
}

// allowSub reports whether the session may follow one more topic; if not,
// it tells the client and audits it.
func (e *Edge) allowSub(s *session, topic string) bool {
	n := 0
	s.mu.Lock()
	for _, c := range s.cursors {
		if strings.HasPrefix(c.fs.name, "topic:") {
			n++
		}
	}
	s.mu.Unlock()
	if n < e.cfg.MaxSubscriptions {
		return true
	}
	e.m.limitSubs.Inc()
	e.audit(auditTooManySubs, s.who(), "topic "+topic)
	s.sendError(auditTooManySubs, "at most "+strconv.Itoa(e.cfg.MaxSubscriptions)+" topics per session: unsub one first")
	return false
}

// forgetPosition deletes the device's position of a feed from the store
// and from Redis (unsub). A hand-off of positions to Redis already in
// flight can write it back once; it then goes with the device's hash.
func (e *Edge) forgetPosition(s *session, feed string) {
	if err := e.store.Forget(s.tenant, s.user, s.device, feed); err != nil {
		e.log.Warn("forget ack position in the store", "session", s.id, "feed", feed, "err", err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	err := e.call(ctx, "acks.forget", func(ctx context.Context) error {
		return e.rdb.HDel(ctx, e.cfg.Space.Acks(s.tenant, s.user, s.device), feed).Err()
	})
	if err != nil {
		e.log.Warn("forget ack position in redis", "session", s.id, "feed", feed, "err", err)
		return
	}
	e.m.positionsForgotten.Inc()
}

// appendUpstream appends a pub frame to the upstream stream and trims it,
// in one round trip: by length on the XADD (MAXLEN ~) and by age with an
// XTRIM (MINID ~), since one XADD takes only one of the two. Both trim
// whole radix-tree nodes only, so the stream can hold about one node (100
// entries) more than the cap, or older than it.
func (e *Edge) appendUpstream(ctx context.Context, s *session, typ string, data []byte) error {
	now := time.Now()
	minID := strconv.FormatInt(now.Add(-e.cfg.UpstreamMaxAge).UnixMilli(), 10) + "-0"
	var trim *redis.IntCmd
	_, err := e.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{
			Stream: e.cfg.Space.Upstream(), MaxLen: e.cfg.UpstreamMaxLen, Approx: true,
			Values: []any{"type", typ, "tenant", s.tenant, "user", s.user, "device", s.device,
				"session", s.id, "data", string(data), "ts", strconv.FormatInt(now.UnixMilli(), 10)},
		})
		trim = p.XTrimMinIDApprox(ctx, e.cfg.Space.Upstream(), minID, 0)
		return nil
	})
	if n := trim.Val(); n > 0 {
		e.m.upstreamTrimmed.Add(float64(n))
	}
	return err
}

//go:embed evictdevices.lua
var evictDevicesSrc string

var evictDevicesScript = redis.NewScript(evictDevicesSrc)

// maxEvictions bounds the devices one connect evicts (after the cap is
// lowered, the rest go at the following connects).
const maxEvictions = 64

// evictDevices deletes the positions of the devices the connect script found past
// the cap, unless they connected again since or are online, in Redis (one
// more round trip, only then) and in this edge's store.
func (e *Edge) evictDevices(ctx context.Context, s *session, over []redis.Z) {
	if len(over) == 0 {
		return
	}
	zs := over[:min(len(over), maxEvictions)]
	sp := e.cfg.Space
	keys := []string{sp.Devices(s.tenant, s.user), sp.Presence(s.tenant, s.user)}
	args := make([]any, 0, 2*len(zs))
	for _, z := range zs {
		d, _ := z.Member.(string)
		keys = append(keys, sp.Acks(s.tenant, s.user, d))
		args = append(args, d, strconv.FormatFloat(z.Score, 'f', -1, 64))
	}
	var evicted []string
	err := e.call(ctx, "devices.evict", func(ctx context.Context) error {
		var err error
		evicted, err = evictDevicesScript.Run(ctx, e.rdb, keys, args...).StringSlice()
		return err
	})
	if err != nil {
		e.log.Warn("evict devices past the cap", "session", s.id, "err", err)
		return
	}
	for _, d := range evicted {
		if err := e.store.ForgetDevice(s.tenant, s.user, d); err != nil {
			e.log.Warn("forget an evicted device in the store", "session", s.id, "evicted", d, "err", err)
		}
	}
	if len(evicted) > 0 {
		e.m.devicesEvicted.Add(float64(len(evicted)))
		e.audit(auditDevicesEvicted, s.who(), fmt.Sprintf("%d devices past %d: %s",
			len(evicted), e.cfg.MaxDevicesPerUser, strings.Join(evicted, " ")))
	}
}
