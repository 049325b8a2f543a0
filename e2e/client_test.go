package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/heraldrt/herald/wsedge/auth"
)

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
	ackEvery   = 50 * time.Millisecond
	dialWait   = 5 * time.Second
)

// errTerminal: the server closed with a code that reconnecting cannot fix.
var errTerminal = errors.New("terminal close")

// wsHTTP dials WebSocket connections; it keeps no idle connections.
var wsHTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// clientSpec describes one device.
type clientSpec struct {
	tenant, user, device string
	topics               []string      // subscribed after every welcome (and allowed by the token)
	urls                 []string      // edges, in the order this device tries them
	resume               bool          // send resume frames with its own positions
	localAddr            string        // source IP to dial from; "" means any
	rcvBuf               int           // SO_RCVBUF of its socket; 0 means the kernel's default
	tokenTTL             time.Duration // life of each token it mints; 0 means an hour
	v2                   bool          // offers herald.v2 and permessage-deflate (and deflates its own frames)
}

// wsClient is one device behaving like an SDK: it connects to its current
// edge, reconnects with jittered backoff, moves to the next edge when its
// edge refuses, drains (1012) or vanishes, drops duplicates by (feed,
// epoch, seq), acks the newest id of each feed every ackEvery, and records
// every notification it accepts.
type wsClient struct {
	clientSpec
	idx int

	ready     chan struct{} // closed at the first welcome (after its subs took effect)
	readyOnce sync.Once

	mu       sync.Mutex
	feeds    map[string]*feedLog
	closes   map[int]int    // close code of each ended session; -1: no close frame
	errs     map[string]int // error frames by code
	conn     *websocket.Conn
	terminal error

	accepted   atomic.Int64 // notifications kept after dedup
	wire       atomic.Int64 // notification frames received
	dups       atomic.Int64 // dropped as seen before
	conflicts  atomic.Int64 // a (feed, epoch, seq) seen with two different events
	epochs     atomic.Int64 // epoch changes of a feed it had seen
	resets     atomic.Int64 // reset frames
	connects   atomic.Int64 // welcomes
	dialFails  atomic.Int64
	pauseUntil atomic.Int64 // unix ns before which it does not read
}

// feedLog is what a client accepted from one feed.
type feedLog struct {
	epoch string
	seq   uint64           // last accepted seq
	got   []int64          // event numbers in the order accepted
	bySeq map[uint64]int64 // event number of each accepted seq of this epoch
}

func newClient(idx int, spec clientSpec) *wsClient {
	return &wsClient{clientSpec: spec, idx: idx, ready: make(chan struct{}),
		feeds: make(map[string]*feedLog), closes: make(map[int]int), errs: make(map[string]int)}
}

func (c *wsClient) key() string { return c.tenant + "/" + c.user + "/" + c.device }

// frame is any server frame, as far as the client reads it.
type frame struct {
	T    string `json:"t"`
	ID   string `json:"id"`
	Feed string `json:"feed"`
	Seq  uint64 `json:"seq"`
	Code string `json:"code"`
	Data struct {
		E int64 `json:"e"` // the publisher's event number
	} `json:"data"`
}

// run connects until ctx ends or the server refuses for good.
func (c *wsClient) run(ctx context.Context) {
	backoff := minBackoff
	cur := 0
	for ctx.Err() == nil {
		code, connected, _ := c.session(ctx, c.urls[cur])
		if ctx.Err() != nil {
			return
		}
		if !connected {
			c.dialFails.Add(1)
		} else {
			c.mu.Lock()
			c.closes[int(code)]++
			c.mu.Unlock()
			backoff = minBackoff
		}
		switch code {
		case 4001, 4003, websocket.StatusPolicyViolation, websocket.StatusMessageTooBig:
			c.mu.Lock()
			c.terminal = fmt.Errorf("%w: %d", errTerminal, code)
			c.mu.Unlock()
			return
		}
		if !connected || code == websocket.StatusServiceRestart || code == -1 {
			cur = (cur + 1) % len(c.urls) // the edge is gone or going: try the next
		}
		sleepCtx(ctx, backoff/2+rand.N(backoff/2+1))
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one connection and returns its close code (-1 without a
// close frame) and whether the dial succeeded.
func (c *wsClient) session(ctx context.Context, rawURL string) (websocket.StatusCode, bool, error) {
	conn, err := c.dial(ctx, rawURL)
	if err != nil {
		return -1, false, err
	}
	conn.SetReadLimit(1 << 20)
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	s := &clientSession{c: c, conn: conn, last: make(map[string]ackPos)}
	acked := make(chan struct{})
	go func() { defer close(acked); s.ackLoop(sctx) }()
	defer func() {
		cancel()
		<-acked
		conn.CloseNow()
	}()
	for {
		if err := c.waitPaused(sctx); err != nil {
			return -1, true, err
		}
		typ, b, err := conn.Read(sctx)
		if err != nil {
			return websocket.CloseStatus(err), true, err
		}
		if typ == websocket.MessageBinary { // protocol 2: read as protocol 1
			if b, err = proto2.ToJSON(b); err != nil {
				return -1, true, err
			}
		}
		if err := s.handle(sctx, b); err != nil {
			return -1, true, err
		}
	}
}

func (c *wsClient) dial(ctx context.Context, rawURL string) (*websocket.Conn, error) {
	ttl := c.tokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	tok, err := auth.Mint(secret, auth.Claims{Subject: c.user, Tenant: c.tenant, Device: c.device, Topics: c.topics}, ttl)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialWait)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: c.httpClient()}
	if c.v2 {
		opts.Subprotocols = []string{events.Protocol2}
		opts.CompressionMode, opts.CompressionThreshold = websocket.CompressionNoContextTakeover, 1
	}
	conn, _, err := websocket.Dial(dctx, rawURL+"?token="+url.QueryEscape(tok), opts)
	if err == nil && c.v2 && conn.Subprotocol() != events.Protocol2 {
		conn.CloseNow()
		return nil, fmt.Errorf("edge answered subprotocol %q to herald.v2", conn.Subprotocol())
	}
	return conn, err
}

// httpClient is wsHTTP, or one that dials from localAddr with rcvBuf.
func (c *wsClient) httpClient() *http.Client {
	if c.localAddr == "" && c.rcvBuf == 0 {
		return wsHTTP
	}
	d := &net.Dialer{Timeout: dialWait}
	if c.localAddr != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(c.localAddr)}
	}
	if n := c.rcvBuf; n > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n) })
			return errors.Join(err, serr)
		}
	}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// waitPaused blocks while the client plays a reader that stopped reading.
func (c *wsClient) waitPaused(ctx context.Context) error {
	if d := time.Until(time.Unix(0, c.pauseUntil.Load())); d > 0 {
		sleepCtx(ctx, d)
	}
	return ctx.Err()
}

// pause stops the client reading for d (its socket fills up; the server
// must close it with 4008).
func (c *wsClient) pause(d time.Duration) { c.pauseUntil.Store(time.Now().Add(d).UnixNano()) }

// drop ends the current connection from the client side: a close
// handshake when graceful, else the TCP connection just goes away.
func (c *wsClient) drop(graceful bool) {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return
	}
	if graceful {
		_ = conn.Close(websocket.StatusNormalClosure, "bye")
		return
	}
	conn.CloseNow()
}

func (c *wsClient) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

func (c *wsClient) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// accept records one notification after dedup and reports whether it was
// new.
func (c *wsClient) accept(f *frame) bool {
	epoch, _, _ := strings.Cut(f.ID, "-")
	c.wire.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	fl := c.feeds[f.Feed]
	if fl == nil {
		fl = &feedLog{bySeq: make(map[uint64]int64)}
		c.feeds[f.Feed] = fl
	}
	if fl.epoch != epoch {
		if fl.epoch != "" {
			c.epochs.Add(1)
		}
		fl.epoch, fl.seq = epoch, 0
		clear(fl.bySeq)
	}
	if f.Seq <= fl.seq {
		c.dups.Add(1)
		if e, ok := fl.bySeq[f.Seq]; ok && e != f.Data.E {
			c.conflicts.Add(1)
		}
		return false
	}
	fl.seq = f.Seq
	fl.got = append(fl.got, f.Data.E)
	fl.bySeq[f.Seq] = f.Data.E
	c.accepted.Add(1)
	return true
}

// positions are the client's own places in every feed it has seen.
func (c *wsClient) positions() map[string]events.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]events.Position, len(c.feeds))
	for name, fl := range c.feeds {
		if fl.epoch != "" {
			out[name] = events.Position{Epoch: fl.epoch, Seq: fl.seq}
		}
	}
	return out
}

// closeCount returns how many sessions ended with code.
func (c *wsClient) closeCount(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closes[code]
}

func (c *wsClient) errCount(code string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs[code]
}

func (c *wsClient) terminalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.terminal
}

// clientSession is one connection of a client.
type clientSession struct {
	c         *wsClient
	conn      *websocket.Conn
	readyPing bool // a ping was sent after the first subs: its pong means they took effect

	mu   sync.Mutex
	last map[string]ackPos // newest notification of each feed received on this connection
}

type ackPos struct {
	seq, acked uint64
	id         string
}

func (s *clientSession) handle(ctx context.Context, b []byte) error {
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("bad frame %.100s: %w", b, err)
	}
	c := s.c
	switch f.T {
	case events.FrameNotification:
		c.accept(&f)
		s.mu.Lock()
		if p := s.last[f.Feed]; f.Seq > p.seq || p.id == "" {
			p.seq, p.id = f.Seq, f.ID
			s.last[f.Feed] = p
		}
		s.mu.Unlock()
	case events.FrameWelcome:
		c.connects.Add(1)
		return s.welcome(ctx)
	case events.FramePong:
		if s.readyPing {
			c.markReady()
		}
	case events.FrameError:
		c.mu.Lock()
		c.errs[f.Code]++
		c.mu.Unlock()
	case events.FrameReset:
		c.resets.Add(1)
	}
	return nil
}

// welcome subscribes to the client's topics and sends its positions.
func (s *clientSession) welcome(ctx context.Context) error {
	c := s.c
	for _, t := range c.topics {
		if err := s.send(ctx, events.ClientFrame{T: events.FrameSub, Topic: t}); err != nil {
			return err
		}
	}
	if c.resume {
		if ps := c.positions(); len(ps) > 0 {
			if err := s.send(ctx, events.ClientFrame{T: events.FrameResume, Feeds: ps}); err != nil {
				return err
			}
		}
	}
	if len(c.topics) == 0 || c.isReady() {
		c.markReady()
		return nil
	}
	s.readyPing = true // frames are handled in order: the pong follows the subs
	return s.send(ctx, events.ClientFrame{T: events.FramePing})
}

func (s *clientSession) send(ctx context.Context, f events.ClientFrame) error {
	if s.c.v2 {
		return s.conn.Write(ctx, websocket.MessageBinary, proto2.AppendClientFrame(nil, f))
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// ackLoop acks, every ackEvery, the newest id of each feed received on
// this connection (duplicates included: they move the stored position too).
func (s *clientSession) ackLoop(ctx context.Context) {
	t := time.NewTicker(ackEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var ids []string
		s.mu.Lock()
		for name, p := range s.last {
			if p.seq > p.acked {
				ids = append(ids, p.id)
				p.acked = p.seq
				s.last[name] = p
			}
		}
		s.mu.Unlock()
		for _, id := range ids {
			if s.send(ctx, events.ClientFrame{T: events.FrameAck, ID: id}) != nil {
				return
			}
		}
	}
}

// sleepCtx waits for d or until ctx ends (backoff and pacing, not
// synchronisation).
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
