package wsedge

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge/auth"
)

// readLoop reads client frames until the connection ends. A frame that
// breaks the session's protocol (a text frame on protocol 2, a binary one
// on protocol 1, one that does not parse) closes the session with 1008;
// an oversize frame, or a deflated one that inflates past the read limit,
// gets 1009 from the library.
//
// Reads take no context: closing the connection (the close handshake, or
// CloseNow after it fails) is what ends a blocked read. A cancellable
// context would cost coder/websocket a context.AfterFunc registration per
// frame header and payload, and one held by every idle connection.
//
// Every frame counts against the session's client limits (clientlimits.go),
// kept here on the reader's stack; past one, the session is closed with
// 4029 and its frames are dropped unread until the connection ends.
func (e *Edge) readLoop(s *session) {
	lim := e.newClientLimits(s.lastRead.Load())
	for {
		typ, r, err := s.conn.Reader(context.Background())
		if err != nil {
			return
		}
		buf := frameBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r) // the library's read limit bounds it
		if err != nil {
			putFrameBuf(buf)
			return
		}
		s.touch()
		e.m.frames.Inc()
		size := buf.Len()
		if !lim.admit(s, size) {
			putFrameBuf(buf)
			continue
		}
		f, err := s.parseClientFrame(typ, buf.Bytes())
		putFrameBuf(buf) // f holds copies, never the buffer itself
		if err != nil {
			s.close(StatusProtocolViolation, clipReason(err.Error()))
			continue
		}
		if f.T == events.FramePub && !lim.admitPub(s, size) {
			continue
		}
		e.handle(s, f)
	}
}

// frameBufs holds buffers for client frames while they are parsed, so the
// usual small frames (ack, ping) are read without allocating.
var frameBufs = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}

func putFrameBuf(b *bytes.Buffer) {
	if b.Cap() > 16<<10 {
		return // a large pub frame: let it go rather than keep it pooled
	}
	frameBufs.Put(b)
}

// handle takes the frame by value: a pointer to it would move every frame
// read to the heap.
func (e *Edge) handle(s *session, f events.ClientFrame) {
	switch f.T {
	case events.FramePing:
		s.mu.Lock()
		s.enqueueLocked(s.pong())
		s.mu.Unlock()
	case events.FrameAck:
		e.onAck(s, f.ID)
	case events.FrameResume:
		e.onResume(s, f.Feeds)
	case events.FrameSub:
		e.onSub(s, f.Topic)
	case events.FrameUnsub:
		e.onUnsub(s, f.Topic)
	case events.FrameRefresh:
		e.onRefresh(s, f.Token)
	case events.FramePub:
		e.onPub(s, f.Type, f.Data)
	}
}

// onAck moves the device's ACK position (cumulative). An id this session
// was never sent is refused with an error frame and changes nothing.
func (e *Edge) onAck(s *session, id string) {
	epoch, seq, name, err := feed.ParseNotificationID(id)
	if err != nil {
		s.sendError("bad_ack", "not a notification id")
		return
	}
	c := s.cursorFor(name)
	if c == nil {
		s.sendError("bad_ack", "not a feed of this session: "+clipReason(name))
		return
	}
	s.mu.Lock()
	if epoch == c.epoch && seq > c.sent {
		// Rare: an entry of the feed this session has not sent yet. The
		// client had it from an earlier session, whose ack was lost when it
		// left, and the replay has not reached it. Like a resume to it: what
		// the client has is not sent again. The feed's lock (taken before
		// s.mu, as everywhere) is needed only here, off the usual ack path.
		s.mu.Unlock()
		fs := c.fs
		fs.mu.Lock()
		s.mu.Lock()
		if epoch == c.epoch && seq > c.sent && seq <= fs.last {
			c.sent, c.lastPushed = seq, seq
		}
		fs.mu.Unlock()
	}
	if epoch != c.epoch || seq > c.sent {
		s.mu.Unlock()
		s.sendError("bad_ack", "id "+clipReason(id)+" was not sent to this session")
		return
	}
	if seq == c.lastPushed {
		seq = c.sent // what follows the last pushed entry was skipped on purpose
	}
	moved := seq > c.acked
	if moved {
		c.acked = seq
	}
	s.mu.Unlock()
	if moved {
		e.m.acks.Inc()
		e.saveAck(s, name, epoch, seq)
	}
}

// onResume replays each named feed from the client's own position.
func (e *Edge) onResume(s *session, feeds map[string]events.Position) {
	for name, p := range feeds {
		c := s.cursorFor(name)
		if c == nil {
			s.sendError("bad_resume", "not a feed of this session: "+clipReason(name))
			continue
		}
		fs := c.fs
		fs.mu.Lock()
		s.mu.Lock()
		switch {
		case fs.epoch == "":
		case p.Epoch != fs.epoch:
			c.epoch = p.Epoch
			s.newEpochLocked(c, fs.epoch, true)
		default:
			c.sent = min(p.Seq, fs.last)
			c.acked = min(c.acked, c.sent)
			c.lastPushed = min(c.lastPushed, c.sent)
		}
		if !c.catching {
			s.startCatchUpLocked(c)
		}
		s.mu.Unlock()
		fs.mu.Unlock()
	}
}

// onSub follows a topic, up to Config.MaxSubscriptions per session.
// onSub follows a topic, up to Config.MaxSubscriptions per session.
func (e *Edge) onSub(s *session, topic string) {
	if !(auth.Claims{Topics: s.topics}).MayTopic(topic) {
		s.sendError("forbidden", "the token does not allow topic "+topic)
		return
	}
	name := keys.TopicFeed(s.tenant, topic).ClientName()
	if s.cursorFor(name) != nil || !e.allowSub(s, topic) {
		return
	}
	positions, err := e.positions(e.ctx, s)
	if err == nil {
		_, err = e.attach(s, keys.TopicFeed(s.tenant, topic), positions, true)
	}
	if err == nil {
		err = e.saveFirstPositions(s)
	}
	if err != nil {
		s.sendError("unavailable", "cannot subscribe now: retry")
	}
}

// onUnsub stops following a topic and deletes the device's position of it,
// whether this session followed it or not: a device that leaves a topic
// keeps no position of it, in the store or in Redis.
func (e *Edge) onUnsub(s *session, topic string) {
	name := keys.TopicFeed(s.tenant, topic).ClientName()
	s.mu.Lock()
	var c *cursor
	for i, x := range s.cursors {
		if x.fs.name == name {
			c = x
			s.cursors = append(s.cursors[:i], s.cursors[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if c != nil {
		e.detach(s, c)
	}
	e.forgetPosition(s, name)
}

// onRefresh extends the session with a new token of the same user. The
// new token's topics replace the old ones: a topic subscription the new
// token no longer allows ends, with a forbidden error frame naming it.
func (e *Edge) onRefresh(s *session, token string) {
	c, err := e.cfg.Verifier.Verify(token)
	switch {
	case errors.Is(err, auth.ErrExpired):
		s.sendError("token_expired", "the new token has expired")
		e.audit("bad_refresh", s.who(), err.Error())
	case err != nil:
		s.sendError("bad_token", tokenReason(err))
		e.audit("bad_refresh", s.who(), err.Error())
	case c.Subject != s.user || c.Tenant != s.tenant:
		e.audit("refresh_other_user", s.who(), "token for "+c.Tenant+"/"+c.Subject)
		s.close(StatusForbidden, "refresh token is for another user")
	default:
		s.setClaims(c)
		e.endDisallowedTopics(s, c)
	}
}

// endDisallowedTopics ends the session's topic subscriptions that claims
// do not allow.
func (e *Edge) endDisallowedTopics(s *session, claims auth.Claims) {
	var ended []*cursor
	s.mu.Lock()
	kept := s.cursors[:0]
	for _, c := range s.cursors {
		if f := c.fs.feed; f.Kind == keys.FeedTopic && !claims.MayTopic(f.Name) {
			ended = append(ended, c)
			continue
		}
		kept = append(kept, c)
	}
	clear(s.cursors[len(kept):])
	s.cursors = kept
	s.mu.Unlock()
	for _, c := range ended {
		e.detach(s, c)
		s.sendError("forbidden", clipReason("subscription to topic "+c.fs.feed.Name+" ended: the new token does not allow it"))
	}
}

// onPub appends an upstream frame to the upstream stream with the verified
// tenant, user and device. The reader has counted it against the session's
// pub limits already; the Gate's rules come on top.
func (e *Edge) onPub(s *session, typ string, data []byte) {
	if g := e.cfg.Gate; g != nil && !g.AllowPub(s.tenant, s.user, typ) {
		e.m.rulePubDenied.Inc()
		s.sendError("rate_limited", "pub of "+typ+" refused by a rate rule: retry later")
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	err := e.call(ctx, "upstream", func(ctx context.Context) error {
		return e.appendUpstream(ctx, s, typ, data)
	})
	if err != nil {
		s.sendError("unavailable", "upstream publish failed: retry")
		return
	}
	e.m.upstream.Inc()
}
