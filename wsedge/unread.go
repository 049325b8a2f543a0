package wsedge

import (
	"context"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/inbox"
)

// unreadTimeout bounds the counting behind one announcement.
const unreadTimeout = 5 * time.Second

// announceUnread sends every session of the user on this edge an unread
// frame with its device's count (another edge, or this one, changed the
// user's read state). The counts are read in a goroutine of the Edge's, so
// the control channel's reader never waits on Redis. One goroutine per user
// at a time: an announcement that comes while it counts makes it count
// again when it is done, so the last frame a session gets is the count
// read after the last change (two quick changes never leave the older
// count last).
func (e *Edge) announceUnread(tenant, user string) {
	uk := userKey{tenant, user}
	e.unreadMu.Lock()
	if _, running := e.unreadAgain[uk]; running {
		e.unreadAgain[uk] = true
		e.unreadMu.Unlock()
		return
	}
	if e.ctx.Err() != nil {
		e.unreadMu.Unlock()
		return
	}
	e.unreadAgain[uk] = false
	e.wg.Add(1)
	e.unreadMu.Unlock()
	go func() {
		defer e.wg.Done()
		for {
			e.sendUnread(uk)
			e.unreadMu.Lock()
			if !e.unreadAgain[uk] || e.ctx.Err() != nil {
				delete(e.unreadAgain, uk)
				e.unreadMu.Unlock()
				return
			}
			e.unreadAgain[uk] = false
			e.unreadMu.Unlock()
		}
	}()
}

// sendUnread counts the user's unread notifications for each of its
// sessions here and queues the frames.
func (e *Edge) sendUnread(uk userKey) {
	var ss []*session
	e.mu.Lock()
	for k, s := range e.devices {
		if k.tenant == uk.tenant && k.user == uk.user {
			ss = append(ss, s)
		}
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(e.ctx, unreadTimeout)
	defer cancel()
	for _, s := range ss {
		n, err := e.inbox.Unread(ctx, inbox.User{Tenant: uk.tenant, User: uk.user, Device: s.device})
		if err != nil {
			e.log.Warn("could not count unread notifications", "tenant", uk.tenant, "user", uk.user, "err", err)
			return
		}
		b := s.frame(events.UnreadFrame{T: events.FrameUnread, Count: n})
		s.mu.Lock()
		// welcome comes first; a session still setting up reads the count
		// itself once welcomed
		if s.welcomed {
			s.enqueueLocked(b)
			e.m.unreadFrames.Inc()
		}
		s.mu.Unlock()
	}
}
