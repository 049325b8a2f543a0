package wsedge

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/store"
	"github.com/heraldrt/herald/wsedge/auth"
)

// serveWS upgrades, authenticates and starts a session's reader goroutine.
// Refusals after the upgrade use the protocol's close codes, which a browser
// can read; the handler itself returns at once.
func (e *Edge) serveWS(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ip := clientIP(r)
	conn, err := websocket.Accept(smallBuffers{w}, r, &websocket.AcceptOptions{OriginPatterns: e.cfg.OriginPatterns})
	if err != nil {
		e.m.connects.WithLabelValues("bad_handshake").Inc()
		return // Accept has written the HTTP error (403 for a foreign origin)
	}
	conn.SetReadLimit(e.cfg.ReadLimit)
	if code, reason := e.admit(r, ip); code != 0 {
		e.refuse(conn, code, reason)
		return
	}
	claims, code, reason := e.authenticate(r)
	if code != 0 {
		e.refuse(conn, code, reason)
		return
	}
	if g := e.cfg.Gate; g != nil && !g.AllowConnect(claims.Tenant) {
		e.m.ruleConnDenied.Inc()
		e.refuse(conn, StatusTooMany, "too many connection attempts for this tenant")
		return
	}
	device := claims.Device
	if device == "" {
		device = r.URL.Query().Get("device")
	}
	if device == "" {
		device = "default"
	}
	if !events.ValidID(device) {
		e.refuse(conn, StatusProtocolViolation, "device must match [A-Za-z0-9_.@-]{1,128}")
		return
	}
	s := e.newSession(conn, claims, device, r.RemoteAddr)
	s.fc, _ = r.Context().Value(connKey{}).(*frameConn)
	if code, reason := e.register(s); code != 0 {
		e.refuse(conn, code, reason)
		return
	}
	e.m.connects.WithLabelValues("ok").Inc()
	// Set-up (Redis, Pebble) runs here, on net/http's goroutine, which ends
	// with this handler: the session's long-lived reader then starts with a
	// small stack instead of one grown by the set-up's deep calls.
	if err := e.setUp(s); err != nil {
		e.log.Warn("session set-up failed", "session", s.id, "err", err)
		s.close(StatusInternal, "set-up failed: reconnect")
	}
	e.m.connectSeconds.Observe(time.Since(start).Seconds())
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		defer e.endSession(s)
		e.readLoop(s)
	}()
}

func (e *Edge) admit(r *http.Request, ip string) (websocket.StatusCode, string) {
	if e.draining.Load() || !e.started.Load() {
		return StatusRestart, "edge is restarting: reconnect to another"
	}
	if !e.limiter.allow(ip, time.Now()) {
		return StatusTooMany, "too many connection attempts from this address"
	}
	return 0, ""
}

func (e *Edge) authenticate(r *http.Request) (auth.Claims, websocket.StatusCode, string) {
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	if token == "" {
		return auth.Claims{}, StatusUnauthorized, "missing token"
	}
	claims, err := e.cfg.Verifier.Verify(token)
	switch {
	case errors.Is(err, auth.ErrExpired):
		return auth.Claims{}, StatusTokenExpired, "token expired"
	case err != nil:
		return auth.Claims{}, StatusUnauthorized, clipReason(err.Error())
	}
	return claims, 0, ""
}

func (e *Edge) refuse(conn *websocket.Conn, code websocket.StatusCode, reason string) {
	e.m.connects.WithLabelValues(codeLabel(code)).Inc()
	e.m.closes.WithLabelValues(codeLabel(code)).Inc()
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		conn.CloseRead(ctx) // lets the close handshake complete
		if err := conn.Close(code, reason); err != nil {
			conn.CloseNow()
		}
	}()
}

func (e *Edge) newSession(conn *websocket.Conn, c auth.Claims, device, remote string) *session {
	s := &session{
		e: e, id: e.cfg.EdgeID + "-" + strconv.FormatUint(e.seq.Add(1), 36), conn: conn,
		tenant: c.Tenant, user: c.Subject, device: device, remote: remote,
	}
	s.setClaims(c)
	s.touch()
	return s
}

// register enforces the per-user cap and replaces an older session of the
// same device.
func (e *Edge) register(s *session) (websocket.StatusCode, string) {
	e.mu.Lock()
	uk, dk := userKey{s.tenant, s.user}, deviceKey{s.tenant, s.user, s.device}
	old := e.devices[dk]
	if old == nil && e.perUser[uk] >= e.cfg.MaxConnsPerUser {
		e.mu.Unlock()
		return StatusTooMany, "too many sessions for this user"
	}
	e.sessions[s] = struct{}{}
	e.devices[dk] = s
	e.perUser[uk]++
	e.mu.Unlock()
	if old != nil {
		old.close(StatusReplaced, "replaced by a new session of this device")
	}
	return 0, ""
}

func (e *Edge) unregister(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sessions, s)
	dk, uk := deviceKey{s.tenant, s.user, s.device}, userKey{s.tenant, s.user}
	if e.devices[dk] == s {
		delete(e.devices, dk)
	}
	if e.perUser[uk]--; e.perUser[uk] <= 0 {
		delete(e.perUser, uk)
	}
}

// setUp records the session, attaches the user and tenant feeds from the
// device's ACK positions, and then sends welcome: once a client has its
// welcome, everything published for it is delivered. Catch-ups start after
// the welcome is queued, so it is always the first frame.
func (e *Edge) setUp(s *session) error {
	now := time.Now()
	if err := e.store.PutSession(store.Session{
		ID: s.id, Tenant: s.tenant, User: s.user, Device: s.device, Edge: e.cfg.EdgeID,
		RemoteAddr: s.remote, ConnectedAt: now,
	}); err != nil {
		e.log.Error("store session", "session", s.id, "err", err)
	}
	// Follow the feeds first (subscribed, heads known), so that one round
	// trip reads the device's positions, adds its presence and writes the
	// first positions of a new device.
	var fss []*feedState
	releaseAll := func() {
		for _, fs := range fss {
			e.hub.release(fs)
		}
	}
	for _, f := range []keys.Feed{keys.UserFeed(s.tenant, s.user), keys.TenantFeed(s.tenant)} {
		fs, err := e.hub.acquire(e.ctx, f)
		if err != nil {
			releaseAll()
			return err
		}
		fss = append(fss, fs)
	}
	positions, err := e.connectPositions(e.ctx, s, true, fss)
	if err != nil {
		releaseAll()
		return err
	}
	var attached []*cursor
	for _, fs := range fss {
		if c := e.attachAcquired(s, fs, positions, false); c != nil {
			attached = append(attached, c)
		}
	}
	// A new device's first positions are in Redis before its welcome (if
	// this edge dies before its next ACK flush, another edge still knows
	// where the device started, and replays what it missed). The round trip
	// above wrote them; one chosen only now (the feed's epoch changed in
	// between) is written here.
	if err := e.saveFirstPositions(s); err != nil {
		return err
	}
	b, _ := jsonFrame(events.Welcome{
		T: events.FrameWelcome, Session: s.id, User: s.user, Tenant: s.tenant, Device: s.device,
		Heartbeat: int(e.cfg.Heartbeat / time.Second),
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(b)
	for _, c := range attached {
		c.catching = false
		s.startCatchUpLocked(c)
	}
	return nil
}

// attach follows a feed for a session, starting from its stored position
// (or the feed's head for a device that never had one). With start, the
// cursor's catch-up starts at once; without, it is left catching (so the hub
// does not offer it anything) for the caller to start.
func (e *Edge) attach(s *session, f keys.Feed, positions map[string][]events.Position, start bool) (*cursor, error) {
	fs, err := e.hub.acquire(e.ctx, f)
	if err != nil {
		return nil, err
	}
	return e.attachAcquired(s, fs, positions, start), nil
}

// attachAcquired is attach for a feed already acquired: the reference
// passes to the cursor, or is released if the session has closed (nil).
func (e *Edge) attachAcquired(s *session, fs *feedState, positions map[string][]events.Position, start bool) *cursor {
	c := &cursor{s: s, fs: fs}
	fs.mu.Lock()
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.startLocked(c, positions)
		if start {
			s.startCatchUpLocked(c)
		} else {
			c.catching = true
		}
	}
	s.mu.Unlock()
	fs.mu.Unlock()
	if closed {
		e.hub.release(fs)
		return nil
	}
	return c
}

// startLocked (fs.mu and s.mu held) places a new cursor.
func (s *session) startLocked(c *cursor, positions map[string][]events.Position) {
	fs := c.fs
	seq, found, other := bestPosition(positions[fs.name], fs.epoch)
	switch {
	case fs.epoch == "":
		// The feed does not exist yet: everything it will hold is new to
		// this device, whatever epoch it starts with.
		c.epoch = ""
		if !found {
			s.firstPositionLocked(fs.name, anyEpoch, 0)
		}
	case found:
		c.epoch, c.sent = fs.epoch, min(seq, fs.last)
		c.acked, c.lastPushed = c.sent, c.sent
	case other:
		c.epoch = "old"
		s.newEpochLocked(c, fs.epoch, true)
	default:
		c.epoch, c.sent, c.acked, c.lastPushed = fs.epoch, fs.last, fs.last, fs.last
		s.firstPositionLocked(fs.name, c.epoch, c.sent)
	}
	fs.addSubLocked(c)
	s.cursors = append(s.cursors, c)
}

// detach stops following a feed (unsub frame, session end).
func (e *Edge) detach(s *session, c *cursor) {
	fs := c.fs
	fs.mu.Lock()
	fs.removeSubLocked(c)
	fs.mu.Unlock()
	e.hub.release(fs)
}

// endSession releases everything a session holds once its reader has
// ended, whichever way it ended: the client's close frame, EOF (its process
// exited), a reset, a read error, or a close by the edge. The socket is
// closed here: coder/websocket closes it itself only after a close frame,
// so a client that vanished without one would otherwise keep its
// descriptor for good. A close handshake still running (the edge's own
// close) has written its frame already; what it waits for can no longer
// arrive, since nobody reads.
func (e *Edge) endSession(s *session) {
	s.conn.CloseNow()
	s.mu.Lock()
	s.closed = true
	cursors := s.cursors
	s.cursors = nil
	s.mu.Unlock()
	for _, c := range cursors {
		e.detach(s, c)
	}
	e.unregister(s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	e.removePresence(ctx, s)
	cancel()
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	if err := e.store.CloseSession(s.id, int(code), reason, time.Now()); err != nil {
		e.log.Debug("store close session", "session", s.id, "err", err)
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func clipReason(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}
