package wsedge

import (
	"context"
	"errors"
	"fmt"
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
	ip := e.clientIP(r)
	fc, _ := r.Context().Value(connKey{}).(*frameConn)
	conn, err := websocket.Accept(smallBuffers{w}, r, e.acceptOptions(r, fc))
	if err != nil {
		e.m.connects.WithLabelValues("bad_handshake").Inc()
		e.audit("bad_handshake", auditWho{Remote: ip}, err.Error())
		return // Accept has written the HTTP error (403 for a foreign origin)
	}
	conn.SetReadLimit(e.cfg.ReadLimit)
	who := auditWho{Remote: ip}
	if code, reason, why := e.admit(ip); code != 0 {
		e.refuse(conn, who, code, reason, why)
		return
	}
	claims, err := e.authenticate(r)
	if err != nil {
		code := StatusUnauthorized
		if errors.Is(err, auth.ErrExpired) {
			code = StatusTokenExpired
		}
		e.refuse(conn, who, code, tokenReason(err), err.Error())
		return
	}
	who.Tenant, who.User = claims.Tenant, claims.Subject
	if g := e.cfg.Gate; g != nil && !g.AllowConnect(claims.Tenant) {
		e.m.ruleConnDenied.Inc()
		e.refuse(conn, who, StatusTooMany, "too many connection attempts for this tenant", "tenant_connect_rule")
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
		e.refuse(conn, who, StatusProtocolViolation, "device must match [A-Za-z0-9_.@-]{1,128}", "bad_device")
		return
	}
	s := e.newSession(conn, claims, device, r.RemoteAddr, ip)
	s.setWire(fc, conn.Subprotocol(), w.Header().Get("Sec-WebSocket-Extensions"))
	if code, reason, why := e.register(s); code != 0 {
		e.refuse(conn, s.who(), code, reason, why)
		return
	}
	e.m.connects.WithLabelValues("ok").Inc()
	// Set-up (Redis, Pebble) runs here, on net/http's goroutine, which ends
	// with this handler: the session's long-lived reader then starts with a
	// small stack instead of one grown by the set-up's deep calls. At most
	// MaxSetups run at once: in a reconnect storm the others wait their
	// turn instead of all crowding Redis's connection pool, where each
	// would be slow and time out. A set-up is bounded: Redis calls may not
	// heed a context (a frozen Redis holds a call for its read timeout and
	// retries), so a timer closes the session with 1013 at the deadline,
	// whatever the set-up is doing; the set-up then finds the session
	// closed and lets go of what it took.
	if !e.setupTurn(s) {
		e.m.connectSeconds.Observe(time.Since(start).Seconds())
		e.startReader(s)
		return
	}
	defer func() { <-e.setups }()
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.SetupTimeout)
	late := time.AfterFunc(e.cfg.SetupTimeout, func() {
		e.audit("setup_timeout", s.who(), "")
		s.close(StatusTryAgain, "redis unavailable: try again later")
	})
	err = e.setUp(ctx, s)
	late.Stop()
	cancel()
	if err != nil {
		code, reason := StatusTryAgain, "redis unavailable: try again later"
		if errors.Is(err, errStore) {
			code, reason = StatusInternal, "set-up failed: reconnect"
		}
		e.log.Warn("session set-up failed", "session", s.id, "err", err)
		e.audit("setup_failed", s.who(), err.Error())
		s.close(code, reason)
	}
	e.m.connectSeconds.Observe(time.Since(start).Seconds())
	e.startReader(s)
}

// startReader starts a registered session's reader, its owner: it ends the
// session when the connection ends.
func (e *Edge) startReader(s *session) {
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		defer e.endSession(s)
		e.readLoop(s)
	}()
}

// setupTurn waits for a set-up slot, for at most SetupQueueWait; false (the
// session closed with 1013) when none came.
func (e *Edge) setupTurn(s *session) bool {
	select {
	case e.setups <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(e.cfg.SetupQueueWait)
	defer t.Stop()
	select {
	case e.setups <- struct{}{}:
		return true
	case <-t.C:
		e.audit("setup_queue_full", s.who(), "")
	case <-e.ctx.Done():
	}
	s.close(StatusTryAgain, "edge busy: try again later")
	return false
}

// errStore marks a set-up failure of the edge's own store (1011), as
// opposed to Redis (1013).
var errStore = errors.New("edge store")

// setupBreakers are the breaker names a session's set-up calls through,
// and the edge's own heartbeat to Redis:
// while one is open, new sessions are refused with 1013 at once.
var setupBreakers = []string{"acks.read", "feed.head", "edge.heartbeat"}

// admit decides on a connection before its token is read: the edge must
// be serving, the address within its connect rate, and Redis reachable.
// why is the audit reason.
func (e *Edge) admit(ip string) (code websocket.StatusCode, reason, why string) {
	if e.draining.Load() || !e.started.Load() {
		return StatusRestart, "edge is restarting: reconnect to another", "draining"
	}
	if !e.limiter.allow(ip, time.Now()) {
		return StatusTooMany, "too many connection attempts from this address", "connect_rate_per_ip"
	}
	if b, ok := e.cfg.Breaker.(interface{ IsOpen(string) bool }); ok {
		for _, name := range setupBreakers {
			if b.IsOpen(name) {
				return StatusTryAgain, "redis unavailable: try again later", "redis_breaker_open"
			}
		}
	}
	return 0, "", ""
}

// authenticate verifies the token from the query or the Authorization
// header.
func (e *Edge) authenticate(r *http.Request) (auth.Claims, error) {
	token := r.URL.Query().Get("token")
	if h := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(h, "Bearer ") {
		token = strings.TrimPrefix(h, "Bearer ")
	}
	if token == "" {
		return auth.Claims{}, errMissingToken
	}
	return e.cfg.Verifier.Verify(token)
}

var errMissingToken = fmt.Errorf("%w: missing token", auth.ErrInvalid)

// refuse closes a connection that never became a session, with an audit
// line (why: a short constant; the detail stays in the log).
func (e *Edge) refuse(conn *websocket.Conn, who auditWho, code websocket.StatusCode, reason, why string) {
	e.m.connects.WithLabelValues(codeLabel(code)).Inc()
	e.m.closes.WithLabelValues(codeLabel(code)).Inc()
	auditReason, detail := why, ""
	if code == StatusUnauthorized || code == StatusTokenExpired {
		auditReason, detail = "bad_token", why
	}
	e.audit(auditReason, who, detail)
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		conn.CloseRead(ctx) // lets the close handshake complete
		if err := conn.Close(code, clipUTF8(reason, maxCloseReason)); err != nil {
			conn.CloseNow()
		}
	}()
}

func (e *Edge) newSession(conn *websocket.Conn, c auth.Claims, device, remote, ip string) *session {
	s := &session{
		e: e, id: e.cfg.EdgeID + "-" + strconv.FormatUint(e.seq.Add(1), 36), conn: conn,
		tenant: c.Tenant, user: c.Subject, device: device, remote: remote, ip: ip,
		since: time.Now().UnixMilli(),
	}
	s.setClaims(c)
	s.touch()
	return s
}

// register enforces the per-user and per-address caps and replaces an
// older session of the same device.
func (e *Edge) register(s *session) (code websocket.StatusCode, reason, why string) {
	e.mu.Lock()
	uk, dk := userKey{s.tenant, s.user}, deviceKey{s.tenant, s.user, s.device}
	old := e.devices[dk]
	if old == nil && e.perUser[uk] >= e.cfg.MaxConnsPerUser {
		e.mu.Unlock()
		return StatusTooMany, "too many sessions for this user", "max_conns_per_user"
	}
	if max := e.cfg.MaxConnsPerIP; max > 0 && e.perIP[s.ip] >= max {
		e.mu.Unlock()
		return StatusTooMany, "too many connections from this address", "max_conns_per_ip"
	}
	e.sessions[s] = struct{}{}
	e.m.byWire.WithLabelValues(s.protocolLabel(), s.compressionLabel()).Inc()
	e.devices[dk] = s
	e.perUser[uk]++
	e.perIP[s.ip]++
	e.countOnlineLocked(s.tenant, 1)
	e.mu.Unlock()
	if old != nil {
		old.close(StatusReplaced, "replaced by a new session of this device")
	}
	return 0, "", ""
}

func (e *Edge) unregister(s *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.sessions, s)
	e.m.byWire.WithLabelValues(s.protocolLabel(), s.compressionLabel()).Dec()
	dk, uk := deviceKey{s.tenant, s.user, s.device}, userKey{s.tenant, s.user}
	if e.devices[dk] == s {
		delete(e.devices, dk)
	}
	if e.perUser[uk]--; e.perUser[uk] <= 0 {
		delete(e.perUser, uk)
	}
	e.countOnlineLocked(s.tenant, -1)
	if e.perIP[s.ip]--; e.perIP[s.ip] <= 0 {
		delete(e.perIP, s.ip)
	}
}

// setUp records the session, attaches the user and tenant feeds from the
// device's ACK positions, and then sends welcome: once a client has its
// welcome, everything published for it is delivered. Catch-ups start after
// the welcome is queued, so it is always the first frame.
func (e *Edge) setUp(ctx context.Context, s *session) error {
	now := time.Now()
	if err := e.store.PutSession(store.Session{
		ID: s.id, Tenant: s.tenant, User: s.user, Device: s.device, Edge: e.cfg.EdgeID,
		RemoteAddr: s.remote, ConnectedAt: now,
	}); err != nil {
		return fmt.Errorf("%w: record session: %w", errStore, err)
	}
	// Follow the feeds first (subscribed), so that one round trip reads the
	// device's positions, adds its presence, reads the user feed's newest
	// position if this edge has just subscribed to it, and writes the first
	// positions of a new device. The tenant feed is usually followed
	// already; the user feed, pending, waits for that round trip.
	tenantFS, err := e.hub.acquire(ctx, keys.TenantFeed(s.tenant))
	if err != nil {
		return err
	}
	userFS, pending, err := e.hub.acquirePending(ctx, keys.UserFeed(s.tenant, s.user))
	if err != nil {
		e.hub.release(tenantFS)
		return err
	}
	fss := []*feedState{userFS, tenantFS}
	var pendingFS *feedState
	settled := !pending
	if pending {
		pendingFS = userFS
		defer func() { // a panic, say: the user's other sessions must not wait for ever
			if !settled {
				e.hub.settle(userFS, events.Position{}, errors.New("connect set-up ended before the feed's position was read"))
			}
		}()
	}
	res, err := e.connectPositions(ctx, s, fss, pendingFS)
	if pending {
		e.hub.settle(userFS, res.tip, err)
		settled = true
	}
	if err != nil {
		e.hub.release(userFS)
		e.hub.release(tenantFS)
		return err
	}
	res.followUp(ctx)
	positions := res.positions
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
	b := s.frame(events.Welcome{
		T: events.FrameWelcome, Session: s.id, User: s.user, Tenant: s.tenant, Device: s.device,
		Heartbeat: int(e.cfg.Heartbeat / time.Second),
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(b)
	s.welcomed = true
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

// detach stops following a feed (unsub frame, session end). A catch-up
// job of the cursor that is queued or running stops at its next step, and
// a rate rule's hold timer is stopped: nothing more of the feed is pushed,
// and no position of it saved.
func (e *Edge) detach(s *session, c *cursor) {
	fs := c.fs
	fs.mu.Lock()
	fs.removeSubLocked(c)
	s.mu.Lock()
	c.detached = true
	t := c.timer
	c.timer = nil
	s.mu.Unlock()
	fs.mu.Unlock()
	e.stopLater(t)
	e.hub.release(fs)
}

// endSession releases everything a session holds once its reader has
// ended, whichever way it ended: the client's close frame, EOF (its process
// exited), a reset, a read error, or a close by the edge. The socket is
// closed here: coder/websocket closes it itself only after a close
// handshake, so a client that vanished without one would otherwise keep
// its descriptor for good.
func (e *Edge) endSession(s *session) {
	e.dropConn(s)
	s.mu.Lock()
	s.closed = true
	cursors := s.cursors
	s.cursors = nil
	s.mu.Unlock()
	for _, c := range cursors {
		e.detach(s, c)
	}
	e.unregister(s)
	e.goneQ.push(s.gone())
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	if err := e.store.CloseSession(s.id, int(code), reason, time.Now()); err != nil {
		e.log.Debug("store close session", "session", s.id, "err", err)
	}
}

// lingerTime bounds how long a closing connection is drained.
const lingerTime = 2 * time.Second

// dropConn closes a session's socket. When the library has sent a close
// frame of its own (1008, 1009) the peer may still be sending (the rest of
// an oversized frame, then its close reply): closing a socket with unread
// data resets the connection, and the peer would lose the close frame and
// its code. So the socket is drained first, until the peer closes its end,
// the connection fails, or lingerTime passes. A client that vanished
// (EOF, reset) ends the drain at once.
func (e *Edge) dropConn(s *session) {
	if s.fc == nil {
		s.conn.CloseNow()
		return
	}
	e.closes.Add(1)
	go func() {
		defer e.closes.Done()
		s.fc.drain(lingerTime)
		s.conn.CloseNow()
	}()
}
