package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Reconnect backoff of a client whose connection ended by itself (storms
// and vanishing are scheduled, not backed off).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// client is one simulated client of a worker: it connects, reads, acks as
// the worker's ack mode says, and reconnects until the worker stops, a
// storm drops it (it then reconnects at its scheduled time and resumes),
// or it vanishes (its socket reset, never to return).
type client struct {
	w     *worker
	i     int // index in the worker
	begin time.Time

	mu         sync.Mutex // guards the fields below, and proto between reader and ack timer
	proto      Protocol
	conn       *websocket.Conn
	raw        net.Conn
	vanished   bool
	stormUntil time.Time // a storm dropped it: reconnect at this time
	stormBusy  bool      // the next welcome is the storm's reconnect
	drops      int       // storms that dropped it

	welcomed bool // had a welcome; the client goroutine only
	upped    bool // the last session had a welcome (a 4029 after the upgrade is no reason to hurry back); the client goroutine only
	gated    bool // released its dial slot; the client goroutine only
}

// run connects and reconnects until ctx ends or the client vanishes.
func (c *client) run(ctx context.Context, gate <-chan struct{}) {
	release := func() {
		if !c.gated {
			c.gated = true
			<-gate
		}
	}
	defer release()
	backoff := minBackoff
	for ctx.Err() == nil {
		wait, drops, gone := c.schedule()
		if gone {
			return
		}
		if wait > 0 && sleepUntil(ctx, time.Now().Add(wait)) != nil {
			return
		}
		code, err := c.session(ctx, release)
		if ctx.Err() != nil {
			return
		}
		release()
		if _, now, gone := c.schedule(); gone || now != drops {
			continue // vanished, or a storm dropped it: its own schedule, no backoff
		}
		c.w.closed(int(code), err, c.welcomed)
		if c.terminal(code) {
			return
		}
		if c.upped {
			backoff = minBackoff // it had a welcome: start over
		}
		if sleepUntil(ctx, time.Now().Add(backoff/2+rand.N(backoff/2+1))) != nil {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// schedule says how long the client must wait before it dials (a storm's
// reconnect time), how many storms have dropped it, and whether it is
// gone for good.
func (c *client) schedule() (wait time.Duration, drops int, gone bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(0, time.Until(c.stormUntil)), c.drops, c.vanished
}

// user is the client's user index.
func (c *client) user() int { return c.w.o.first + c.i }

// terminal reports whether a close code says reconnecting cannot help,
// as the target's protocol reads it.
func (c *client) terminal(code websocket.StatusCode) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proto.Terminal(int(code))
}

// session runs one connection; it returns the close code (-1 when it
// never connected).
func (c *client) session(ctx context.Context, release func()) (websocket.StatusCode, error) {
	c.upped = false
	conn, err := c.dial(ctx)
	if err != nil {
		return -1, err
	}
	var acks *acker
	if c.w.acks.kind == ackBatched {
		acks = newAcker(c, conn)
		defer acks.stop() // after detach (defers run last first): a send in progress fails and returns
	}
	defer c.detach(conn)
	c.w.connected.Add(1)
	defer c.w.connected.Add(-1)
	// Reads take no context (a cancellable one costs the library a
	// context.AfterFunc per frame): when ctx ends, the close handshake
	// ends the blocked read.
	stop := context.AfterFunc(ctx, func() { conn.Close(websocket.StatusNormalClosure, "bye") })
	defer stop()
	c.mu.Lock()
	hello := c.proto.Hello()
	c.mu.Unlock()
	if err := c.write(conn, hello); err != nil {
		return websocket.CloseStatus(err), err
	}
	var buf bytes.Buffer
	for {
		_, r, err := conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r) // the read limit bounds it
		}
		if err != nil {
			return websocket.CloseStatus(err), err
		}
		c.w.trace.line(c.user(), "<", buf.Bytes())
		c.mu.Lock()
		m, err := c.proto.Read(buf.Bytes())
		c.mu.Unlock()
		if err != nil {
			return websocket.CloseStatus(err), err
		}
		if err := c.handle(conn, m, release, acks); err != nil {
			return websocket.CloseStatus(err), err
		}
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{} // do not keep a rare large frame's buffer
		}
	}
}

// dial opens a connection and attaches it, unless the client vanished
// meanwhile.
func (c *client) dial(ctx context.Context) (*websocket.Conn, error) {
	c.mu.Lock()
	url, header, err := c.proto.Dial()
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var raw net.Conn
	dctx, cancel := context.WithTimeout(withRawConn(ctx, &raw), 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: c.w.dialers[c.i%len(c.w.dialers)], HTTPHeader: header}
	if wo, ok := c.proto.(wireOptions); ok {
		wo.DialOptions(opts)
	}
	conn, _, err := websocket.Dial(dctx, url, opts)
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(1 << 20)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vanished {
		if raw != nil {
			resetClose(raw)
		}
		conn.CloseNow()
		return nil, fmt.Errorf("vanished while dialling")
	}
	c.conn, c.raw = conn, raw
	return conn, nil
}

// detach forgets the connection and closes it (a no-op when a storm or a
// reset closed it already).
func (c *client) detach(conn *websocket.Conn) {
	c.mu.Lock()
	if c.conn == conn {
		c.conn, c.raw = nil, nil
	}
	c.mu.Unlock()
	conn.CloseNow()
}

// handle acts on one server message: the welcome, replies, notifications
// and their acks.
func (c *client) handle(conn *websocket.Conn, m Msg, release func(), acks *acker) error {
	now := time.Now()
	if m.Welcome {
		c.upped = true
		c.welcome(now, m.Resumed)
		release()
	}
	if err := c.write(conn, m.Reply); err != nil {
		return err
	}
	ph := c.w.phase.Load()
	for _, p := range m.Payloads {
		c.w.notification(ph, c.i, p, now)
	}
	if m.Duplicates > 0 {
		ph.dups.Add(int64(m.Duplicates))
	}
	if m.Problem != "" {
		c.w.note(m.Problem)
	}
	if len(m.Payloads) == 0 {
		return nil
	}
	switch c.w.acks.kind {
	case ackEach:
		c.mu.Lock()
		frames := c.proto.Acks()
		c.mu.Unlock()
		ph.acks.Add(int64(len(frames)))
		return c.write(conn, frames)
	case ackBatched:
		acks.arm()
	}
	return nil
}

// welcome counts a session's welcome: the client's first, or the
// reconnect a storm asked for.
func (c *client) welcome(now time.Time, resumed bool) {
	w := c.w
	w.welcomes.Add(1)
	if !c.welcomed {
		c.welcomed = true
		w.welcomed.Add(1)
		w.connectH.record(now.Sub(c.begin).Microseconds())
	}
	c.mu.Lock()
	storm := c.stormBusy
	c.stormBusy = false
	c.mu.Unlock()
	if st := w.storm.Load(); storm && st != nil {
		st.welcome(now, resumed)
	}
}

// wireOptions is a Protocol with more to say about its connections than
// Dial's URL and headers (Herald's --protocol and --deflate): the dial's
// subprotocols and compression, and the type of its frames. Its methods
// return what the flags fixed: they need no lock.
type wireOptions interface {
	DialOptions(*websocket.DialOptions)
	MessageType() websocket.MessageType
}

func (c *client) write(conn *websocket.Conn, frames [][]byte) error {
	typ := websocket.MessageText
	if wo, ok := c.proto.(wireOptions); ok {
		typ = wo.MessageType()
	}
	for _, f := range frames {
		c.w.trace.line(c.user(), ">", f)
		if err := conn.Write(context.Background(), typ, f); err != nil {
			return err
		}
	}
	return nil
}

// drop ends the connection abruptly (no close frame) and schedules the
// reconnect at until: a storm.
func (c *client) drop(until time.Time) {
	c.w.trace.line(c.user(), "!", []byte("storm: drop"))
	c.mu.Lock()
	c.stormUntil, c.stormBusy = until, true
	c.drops++
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.CloseNow()
	}
}

// vanish resets the socket (SO_LINGER 0: a TCP RST, no WebSocket close)
// and keeps the client from ever connecting again. It returns an error
// when there was no socket to reset, or the reset failed.
func (c *client) vanish() error {
	c.w.trace.line(c.user(), "!", []byte("vanish: reset"))
	c.mu.Lock()
	c.vanished = true
	raw := c.raw
	c.mu.Unlock()
	if raw == nil {
		return fmt.Errorf("vanish: u%d had no socket to reset", c.user())
	}
	return resetClose(raw)
}

// acker sends a connection's batched acks (--acks batched:<interval>):
// every feed's newest notification, the interval after the first one not
// yet acked. A timer sends them; the read loop only arms it.
type acker struct {
	c     *client
	conn  *websocket.Conn
	t     *time.Timer
	armed atomic.Bool

	mu   sync.Mutex // held while sending; stop waits for it
	done bool
}

func newAcker(c *client, conn *websocket.Conn) *acker {
	a := &acker{c: c, conn: conn}
	a.t = time.AfterFunc(time.Hour, a.send)
	a.t.Stop()
	return a
}

func (a *acker) arm() {
	if a.armed.CompareAndSwap(false, true) {
		a.t.Reset(a.c.w.acks.every)
	}
}

func (a *acker) send() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.armed.Store(false) // before reading positions: a later notification arms again
	a.c.mu.Lock()
	frames := a.c.proto.Acks()
	a.c.mu.Unlock()
	a.c.w.phase.Load().acks.Add(int64(len(frames)))
	a.c.write(a.conn, frames)
}

// stop ends the acker and waits for a send in progress (the connection is
// closed first, so that the send does not wait on a stuck write).
func (a *acker) stop() {
	a.t.Stop()
	a.mu.Lock()
	a.done = true
	a.mu.Unlock()
}
