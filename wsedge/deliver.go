package wsedge

import (
	"context"
	"errors"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
)

// Delivery. A cursor is either live (the hub offers it every new entry from
// the feed's ring) or catching (a job on the catch-up pool reads the stream
// for it until the ring covers its position, then makes it live again under
// the feed's lock, so nothing falls between replay and live).

// offer is called by the hub with fs.mu held.
func (s *session) offer(fs *feedState, c *cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || c.catching {
		return
	}
	if !s.fromRingLocked(fs, c, false) {
		s.startCatchUpLocked(c)
	}
}

// fromRingLocked pushes the ring's entries after the cursor. It returns false
// when the cursor cannot go on from the ring (it is behind the ring, a rate
// rule holds it, or, when catching, the send queue is full).
func (s *session) fromRingLocked(fs *feedState, c *cursor, catching bool) bool {
	if c.epoch != fs.epoch && fs.epoch != "" {
		s.newEpochLocked(c, fs.epoch, c.epoch != "")
	}
	if c.sent >= fs.last {
		return true
	}
	if len(fs.ring) == 0 || fs.ring[0].Seq > c.sent+1 {
		return false
	}
	for i := int(c.sent + 1 - fs.ring[0].Seq); i < len(fs.ring); i++ {
		if catching && s.room() == 0 {
			return false
		}
		if !s.admitLocked(c, &fs.ring[i].Entry, fs.ring[i].frameFor(s.proto2, fs.name)) {
			return false
		}
	}
	return true
}

// admitLocked pushes or deliberately skips one entry, in order. It returns
// false when the entry must wait (a rate rule holds it) or the session
// closed.
func (s *session) admitLocked(c *cursor, e *feed.Entry, frame []byte) bool {
	switch {
	case e.Seq != c.sent+1:
		return false
	case !e.For(s.device), e.Expired(time.Now().UnixMilli()):
		s.skipLocked(c, e.Seq)
		return true
	}
	if g := s.e.cfg.Gate; g != nil && !s.gateLocked(c, g, e) {
		return c.sent == e.Seq // skipped (dropped or waited too long), or held
	}
	if frame == nil {
		frame = s.notification(c.fs.name, e)
	}
	if !s.enqueueLocked(frame) {
		return false
	}
	c.sent, c.lastPushed = e.Seq, e.Seq
	return true
}

// skipLocked moves the cursor past an entry that is deliberately not pushed
// (another device's, expired, or a rule's drop). When the client has acked
// everything pushed so far, the ACK position moves past it too, so that a
// reconnect does not offer it again.
func (s *session) skipLocked(c *cursor, seq uint64) {
	c.sent = seq
	if c.acked >= c.lastPushed {
		c.acked = seq
		s.e.saveAck(s, c.fs.name, c.epoch, seq)
	}
}

// newEpochLocked moves a cursor to a feed's new epoch: history before it is
// gone, so the client is told with a reset frame when it had a position.
func (s *session) newEpochLocked(c *cursor, epoch string, tell bool) {
	if tell {
		s.resetLocked(c, "epoch changed: history was lost")
	}
	c.epoch, c.sent, c.acked, c.lastPushed = epoch, 0, 0, 0
	s.e.saveAck(s, c.fs.name, epoch, 0)
}

func (s *session) resetLocked(c *cursor, reason string) {
	s.e.m.resets.Inc()
	b := s.frame(events.Reset{T: events.FrameReset, Feed: c.fs.name, Reason: reason})
	s.enqueueLocked(b)
}

// startCatchUpLocked hands the cursor to the catch-up pool, after a delay
// when a rate rule holds it.
func (s *session) startCatchUpLocked(c *cursor) {
	if c.catching || s.closed {
		return
	}
	c.catching = true
	if wait := time.Until(c.heldTill); wait > 0 {
		s.e.later(wait, c)
		return
	}
	s.e.jobQ.push(c)
}

// catchUp runs on the catch-up pool until the cursor is live again, paused
// for queue space, held by a rule, or its session ended.
func (e *Edge) catchUp(ctx context.Context, c *cursor) {
	s, fs := c.s, c.fs
	for ctx.Err() == nil {
		fs.mu.Lock()
		s.mu.Lock()
		if s.closed || c.detached {
			s.mu.Unlock()
			fs.mu.Unlock()
			return
		}
		if s.fromRingLocked(fs, c, true) {
			c.catching = false
			s.mu.Unlock()
			fs.mu.Unlock()
			return
		}
		if s.pausedLocked(c) {
			s.mu.Unlock()
			fs.mu.Unlock()
			return
		}
		from, epoch, room := c.sent, c.epoch, s.room()
		s.mu.Unlock()
		fs.mu.Unlock()

		var got string
		var entries []feed.Entry
		err := e.call(ctx, "feed.read", func(ctx context.Context) (err error) {
			got, entries, err = e.hub.reader.Range(ctx, fs.feed, from, min(int64(room), e.cfg.ReplayBatch))
			return noFeedOK(err)
		})
		if err == nil && got == "" && entries == nil {
			got = epoch // the feed does not exist (any more)
		}
		if err != nil {
			e.log.Warn("catch-up read failed", "feed", fs.feed.Tag(), "session", s.id, "err", err)
			sleepCtx(ctx, 200*time.Millisecond)
			continue
		}
		e.m.replayed.Add(float64(len(entries)))
		fs.mu.Lock()
		s.mu.Lock()
		s.applyLocked(c, from, got, entries)
		s.mu.Unlock()
		fs.mu.Unlock()
	}
}

// pausedLocked parks a catching cursor that must wait: for queue space
// (resumed by flush) or for a rate rule (resumed by a timer).
func (s *session) pausedLocked(c *cursor) bool {
	if wait := time.Until(c.heldTill); wait > 0 {
		s.e.later(wait, c)
		return true
	}
	if s.room() == 0 {
		s.waiting = append(s.waiting, c)
		return true
	}
	return false
}

// applyLocked (fs.mu and s.mu held) delivers entries read from the stream after from, unless the
// cursor moved meanwhile (a resume frame), in which case the loop reads again.
func (s *session) applyLocked(c *cursor, from uint64, epoch string, entries []feed.Entry) {
	if c.sent != from || s.closed || c.detached {
		return
	}
	if epoch != c.epoch {
		s.newEpochLocked(c, epoch, c.epoch != "")
		return
	}
	if len(entries) == 0 {
		s.trimmedTailLocked(c)
		return
	}
	if first := entries[0].Seq; first > c.sent+1 {
		s.resetLocked(c, "history was trimmed: fetch the inbox")
		c.sent = first - 1
	}
	for i := range entries {
		if s.room() == 0 || !s.admitLocked(c, &entries[i], nil) {
			return
		}
	}
}

// trimmedTailLocked (fs.mu and s.mu held) handles a stream with nothing
// after the cursor while the hub has seen more: those entries are gone.
func (s *session) trimmedTailLocked(c *cursor) {
	if last := c.fs.last; last > c.sent {
		s.resetLocked(c, "history was trimmed: fetch the inbox")
		c.sent = last
	}
}

// gateLocked asks the rate rules about e. It returns true to push now; false
// with c.sent moved past e when e is skipped; false with c.heldTill set when
// e must wait.
func (s *session) gateLocked(c *cursor, g Gate, e *feed.Entry) bool {
	d := g.AllowPush(s.tenant, s.user, e.Type)
	if d.Allow {
		c.heldSeq = 0
		return true
	}
	now := time.Now()
	if c.heldSeq != e.Seq {
		c.heldSeq, c.heldSince = e.Seq, now
	}
	if d.Drop || now.Sub(c.heldSince) >= d.MaxWait {
		s.e.m.ruleSkipped.Inc()
		c.heldSeq = 0
		s.skipLocked(c, e.Seq)
		return false
	}
	s.e.m.ruleHeld.Inc()
	c.heldTill = now.Add(min(max(d.Retry, 10*time.Millisecond), d.MaxWait-now.Sub(c.heldSince)+time.Millisecond))
	return false
}

// noFeedOK lets a missing feed through a breaker as an answer, not a failure.
func noFeedOK(err error) error {
	if errors.Is(err, feed.ErrNoFeed) {
		return nil
	}
	return err
}
