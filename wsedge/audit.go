package wsedge

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// The audit trail: one structured log line (level WARN, msg "audit") per
// refused connection, closed session for a limit, or limit hit, with the
// client's address, tenant and user when known, and the reason. Never the
// token. Lines are rate-limited per reason, so a client cannot flood the
// log: past auditBurst lines of one reason in auditWindow, the rest are
// only counted, and the next line of that reason says how many were
// suppressed. The counter herald_edge_audit_total{reason} counts every
// event, logged or not.

// Audit attribute keys.
const (
	auditKeyReason     = "reason"
	auditKeyRemote     = "remote"
	auditKeyTenant     = "tenant"
	auditKeyUser       = "user"
	auditKeyDevice     = "device"
	auditKeySession    = "session"
	auditKeyDetail     = "detail"
	auditKeySuppressed = "suppressed"
)

const (
	auditWindow = time.Second
	auditBurst  = 20
)

// auditWho is what is known of the client at the time of the event.
type auditWho struct {
	Remote, Tenant, User, Device, Session string
}

func (s *session) who() auditWho {
	return auditWho{Remote: s.ip, Tenant: s.tenant, User: s.user, Device: s.device, Session: s.id}
}

// auditLimiter counts lines per reason within a window.
type auditLimiter struct {
	mu      sync.Mutex
	windows map[string]*auditCount
}

type auditCount struct {
	start      time.Time
	logged     int
	suppressed int
}

// admit reports whether a line of reason may be logged now and, if so, how
// many lines of the reason were suppressed since the last one logged.
func (l *auditLimiter) admit(reason string, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil {
		l.windows = make(map[string]*auditCount)
	}
	w := l.windows[reason]
	if w == nil {
		w = &auditCount{start: now}
		l.windows[reason] = w
	}
	if now.Sub(w.start) >= auditWindow {
		w.start, w.logged = now, 0
	}
	if w.logged >= auditBurst {
		w.suppressed++
		return false, 0
	}
	w.logged++
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}

// audit records one security-relevant event. reason is a short constant
// ("bad_token", "frame_rate", ...): it labels the metric, so it must not
// carry client data; detail may (it is clipped).
func (e *Edge) audit(reason string, who auditWho, detail string) {
	e.m.audit.WithLabelValues(reason).Inc()
	ok, suppressed := e.auditLim.admit(reason, time.Now())
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String(auditKeyReason, reason), slog.String(auditKeyRemote, who.Remote))
	for _, a := range [...]struct{ k, v string }{
		{auditKeyTenant, who.Tenant}, {auditKeyUser, who.User}, {auditKeyDevice, who.Device},
		{auditKeySession, who.Session}, {auditKeyDetail, clipReason(detail)},
	} {
		if a.v != "" {
			attrs = append(attrs, slog.String(a.k, a.v))
		}
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int(auditKeySuppressed, suppressed))
	}
	e.log.LogAttrs(context.Background(), slog.LevelWarn, "audit", attrs...)
}
