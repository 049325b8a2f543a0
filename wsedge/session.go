package wsedge

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/wsedge/auth"
)

// session is one connected device. Its reader goroutine is its owner; the
// writer pool and catch-up workers borrow it.
type session struct {
	e       *Edge
	id      string
	conn    *websocket.Conn
	fc      *frameConn // nil when the listener is not the edge's
	proto2  bool       // the session speaks protocol 2 (herald.v2)
	deflate bool       // permessage-deflate was negotiated
	tenant  string
	user    string
	device  string
	remote  string // the TCP peer (host:port)
	ip      string // the client's address (behind a trusted proxy, the one it names)
	since   int64  // unix ms when the session started

	topics   []string     // the token's topic globs
	expires  atomic.Int64 // unix ms of the token's exp
	lastRead atomic.Int64 // unix ms of the last frame or pong from the client
	pinging  atomic.Bool  // a ping is queued or in flight

	mu          sync.Mutex
	queue       [][]byte
	spare       [][]byte
	scheduled   bool // in the writer queue or being written
	closed      bool
	welcomed    bool // welcome is queued: other frames may follow
	closeCode   websocket.StatusCode
	closeReason string
	cursors     []*cursor
	waiting     []*cursor         // catch-ups paused for queue space
	first       []events.Position // first positions not yet in Redis (set-up, sub)
	firstFeeds  []string
}

// cursor is a session's place in one feed. Its fields are guarded by the
// session's mu.
type cursor struct {
	s     *session
	fs    *feedState
	sub   int // index in fs.subs, guarded by fs.mu
	epoch string
	sent  uint64 // last seq pushed or deliberately skipped
	acked uint64
	// lastPushed is the last seq actually queued to the client; entries
	// after it up to sent were skipped on purpose.
	lastPushed uint64
	catching   bool      // a catch-up job, not the live path, delivers
	heldTill   time.Time // a rate rule holds the next entry until then
	heldSeq    uint64    // the entry it holds
	heldSince  time.Time // since when
	// timer hands the held cursor back to the catch-up pool (Edge.later);
	// detach stops it
	timer *time.Timer
	// detached: the session no longer follows the feed (unsub, a refresh
	// that forbids the topic, the session's end); a catch-up job or timer
	// still under way for it does nothing more
	detached bool
}

func (s *session) setClaims(c auth.Claims) {
	s.topics = c.Topics
	// The same leeway as at connect: a token the Verifier just accepted is
	// not cut at once.
	s.expires.Store(c.Expires.Add(s.e.cfg.TokenLeeway).UnixMilli())
}

func (s *session) touch() { s.lastRead.Store(time.Now().UnixMilli()) }

// enqueueLocked adds a frame to the send queue. On overflow the session is
// closed with 4008 and false returned: the frames it lost are still in the
// feed, and the device resumes from its ACK position.
func (s *session) enqueueLocked(frame []byte) bool {
	if s.closed {
		return false
	}
	if len(s.queue) >= s.e.cfg.SendQueue {
		s.e.m.slow.Inc()
		s.closeLocked(StatusSlowConsumer, "send queue overflow: reconnect and resume")
		return false
	}
	s.queue = append(s.queue, frame)
	if !s.scheduled {
		s.scheduled = true
		s.e.writeQ.push(s)
	}
	return true
}

func (s *session) room() int { return s.e.cfg.SendQueue - len(s.queue) }

func (s *session) sendError(code, msg string) {
	b := s.frame(events.ErrorFrame{T: events.FrameError, Code: code, Msg: msg})
	s.mu.Lock()
	s.enqueueLocked(b)
	s.mu.Unlock()
}

// flush writes everything queued, in order, then hands paused catch-ups
// back to the workers. Only one flush runs per session at a time.
func (s *session) flush() {
	s.mu.Lock()
	frames := s.queue
	s.queue, s.spare = s.spare[:0], nil
	s.mu.Unlock()

	var err error
	if s.fc != nil {
		// One socket write per 256 KiB or so of whole frames, even for one.
		var n int
		n, err = s.fc.writeFrames(frames, s.e.cfg.WriteTimeout)
		s.e.m.wireBytes.WithLabelValues(s.protocolLabel(), s.compressionLabel()).Add(float64(n))
	} else {
		ctx, cancel := context.WithTimeout(s.e.ctx, s.e.cfg.WriteTimeout)
		for _, f := range frames {
			if err = s.conn.Write(ctx, s.msgType(), f); err != nil {
				break
			}
		}
		cancel()
	}
	if err == nil {
		s.e.m.pushed.Add(float64(len(frames)))
		s.e.m.flushFrames.Observe(float64(len(frames)))
	}
	clear(frames)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.spare = frames[:0]
	if errors.Is(err, errCloseSent) {
		// The library is closing the connection (the client's close, or a
		// protocol error): the reader ends the session, with its own code.
		s.scheduled = false
		return
	}
	if err != nil {
		s.closeLocked(StatusSlowConsumer, "write failed or timed out")
		s.scheduled = false
		return
	}
	if len(s.queue) > 0 && !s.closed {
		s.e.writeQ.push(s)
	} else {
		s.scheduled = false
	}
	for _, c := range s.waiting {
		s.e.jobQ.push(c)
	}
	s.waiting = s.waiting[:0]
}

// closeLocked ends the session with a close code. The close handshake runs
// on its own goroutine (it waits for the peer), owned by the Edge.
func (s *session) closeLocked(code websocket.StatusCode, reason string) {
	if s.closed {
		return
	}
	s.closed, s.closeCode, s.closeReason = true, code, reason
	s.e.m.closes.WithLabelValues(codeLabel(code)).Inc()
	s.e.goClose(s, code, reason)
}

func (s *session) close(code websocket.StatusCode, reason string) {
	s.mu.Lock()
	s.closeLocked(code, reason)
	s.mu.Unlock()
}

func (s *session) cursorFor(name string) *cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cursors {
		if c.fs.name == name {
			return c
		}
	}
	return nil
}
