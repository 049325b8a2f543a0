package wsedge

import (
	"context"
	"encoding/json"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/inbox"
)

// unreadTimeout bounds the counting behind one announcement.
const unreadTimeout = 5 * time.Second

// announceUnread sends every session of the user on this edge an unread
// frame with its device's count (another edge, or this one, changed the
// user's read state). The counts are read in a goroutine of the Edge's, so
// the control channel's reader never waits on Redis.
func (e *Edge) announceUnread(tenant, user string) {
	var ss []*session
	e.mu.Lock()
	for k, s := range e.devices {
		if k.tenant == tenant && k.user == user {
			ss = append(ss, s)
		}
	}
	e.mu.Unlock()
	if len(ss) == 0 || e.ctx.Err() != nil {
		return
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		ctx, cancel := context.WithTimeout(e.ctx, unreadTimeout)
		defer cancel()
		for _, s := range ss {
			n, err := e.inbox.Unread(ctx, inbox.User{Tenant: tenant, User: user, Device: s.device})
			if err != nil {
				e.log.Warn("could not count unread notifications", "tenant", tenant, "user", user, "err", err)
				return
			}
			b, _ := json.Marshal(events.UnreadFrame{T: events.FrameUnread, Count: n})
			s.mu.Lock()
			// welcome comes first; a session still setting up reads the
			// count itself once welcomed
			if s.welcomed {
				s.enqueueLocked(b)
				e.m.unreadFrames.Inc()
			}
			s.mu.Unlock()
		}
	}()
}
