package wsedge

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Direct frame writing. coder/websocket writes every message with two
// channel-based locks and its own flush, one write syscall each; a session's
// queued frames instead go out as WebSocket frames (text for protocol 1,
// binary for protocol 2, deflated when permessage-deflate is on: deflate.go)
// encoded by the edge into one buffer and one socket write (per 256 KiB or
// so of whole frames). Control frames (pings, pongs, close)
// are still the library's: they reach the socket through frameConn.Write,
// under the same mutex, so frames never interleave. Listener and
// ConnContext install the wrapper; without them (httptest.NewServer) every
// frame is written through the library, on its own.

type connKey struct{}

// Listener wraps ln so that the edge can write frames on its connections
// directly and upgrades requests for /ws itself (upgrade.go), passing them
// to h (the server's handler, which must lead /ws to the edge; nil means
// the edge itself); the connections it returns from Accept carry every
// other request. Serve with an http.Server whose Handler is h and whose
// ConnContext is Edge.ConnContext. Connections from Config.TrustedProxies
// may start with a PROXY protocol header, which names the client. Closing
// it (the server's Close or Shutdown) waits for the handshakes under way.
func (e *Edge) Listener(ln net.Listener, h http.Handler) net.Listener {
	if h == nil {
		h = e
	}
	return newMuxListener(frameListener{ln, e.cfg.TrustedProxies}, e, h)
}

// ConnContext is the http.Server ConnContext that hands the edge its
// connection wrapper.
func (e *Edge) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if fc := frameConnOf(c); fc != nil {
		return context.WithValue(ctx, connKey{}, fc)
	}
	return ctx
}

// frameConnOf returns the edge's wrapper of c, also under a connection
// handed to net/http with the bytes already read (prefixConn); nil for a
// connection from another listener (httptest.NewServer).
func frameConnOf(c net.Conn) *frameConn {
	if pc, ok := c.(*prefixConn); ok {
		c = pc.Conn
	}
	fc, _ := c.(*frameConn)
	return fc
}

type frameListener struct {
	net.Listener
	trusted []netip.Prefix
}

func (l frameListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	fc := &frameConn{Conn: c}
	if len(l.trusted) > 0 {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil && trusted(l.trusted, ap.Addr()) {
			fc.proxy = &proxyState{}
		}
	}
	return fc, nil
}

// proxyState is a trusted peer's PROXY header, read by the connection's
// first Read (on net/http's goroutine for it, under its read deadline).
type proxyState struct {
	done    bool
	pending []byte // bytes read that were not a header
}

// Read reads a trusted peer's PROXY header first.
func (c *frameConn) Read(p []byte) (int, error) {
	if ps := c.proxy; ps != nil && (!ps.done || len(ps.pending) > 0) {
		if !ps.done {
			ps.done = true
			addr, rest, err := readProxyHeader(c.Conn)
			if err != nil {
				return 0, err
			}
			c.proxied, ps.pending = addr, rest
		}
		if len(ps.pending) > 0 {
			n := copy(p, ps.pending)
			ps.pending = ps.pending[n:]
			return n, nil
		}
	}
	return c.Conn.Read(p)
}

// errCloseSent: the library has written a close frame, after which no data
// frame may follow (RFC 6455 section 5.5.1).
var errCloseSent = errors.New("websocket close frame already sent")

// frameConn serialises the library's writes and the edge's frame batches.
type frameConn struct {
	net.Conn
	mu        sync.Mutex
	upgraded  bool // the 101 response is out: writes are WebSocket frames
	closeSent bool
	// broken: a batch was cut off mid-frame (its write failed after some
	// bytes), so nothing more may go out, not even a close frame: the peer
	// would read it as payload. The connection can only be dropped.
	broken   bool
	deadline time.Time // the socket's write deadline; zero when none

	proxy   *proxyState // a trusted proxy's connection; nil otherwise
	proxied netip.Addr  // the client named by its PROXY header, if any

	// wire is the session's protocol and compression, set once before its
	// first frame. With context takeover, encMu keeps frames deflated in
	// the order they are written (each one's dictionary is the ones before).
	wire  wire
	encMu sync.Mutex
}

// errBroken: an earlier write left a frame half-sent.
var errBroken = errors.New("websocket frame cut off by a failed write")

// upgrade marks the end of HTTP on the connection (after the 101 response):
// from now on every Write is a frame.
func (c *frameConn) upgrade() {
	c.mu.Lock()
	c.upgraded = true
	c.mu.Unlock()
}

var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Write is net/http's path for the upgrade response, then (once upgrade is
// called) the library's: one call per frame, since its write buffer
// (connWriteBuffer) holds any control frame whole and it flushes after every
// frame, so p starts with a frame header (a control frame always has FIN
// set and no RSV bit, compressed or not). A control frame carries its own
// timeout (the library closes the connection when it passes), so it runs
// without a socket deadline.
func (c *frameConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return 0, errBroken
	}
	if c.upgraded && len(p) > 0 && p[0] == finBit|opClose {
		c.closeSent = true
	}
	if !c.deadline.IsZero() {
		c.deadline = time.Time{}
		c.Conn.SetWriteDeadline(c.deadline)
	}
	return c.Conn.Write(p)
}

// writeChunk is how much of a batch writeFrames encodes before writing it:
// a session may have a thousand frames of up to 64 KiB queued, and the
// buffer is per flush, on each of the writer goroutines.
const writeChunk = 256 << 10

// writeFrames writes frames as unfragmented WebSocket messages of the
// session's protocol, deflated as its wire says: one write for a batch of
// up to writeChunk bytes (whole frames; a larger batch takes several, and
// the library's control frames may go between them).
// Each write gets between half of timeout and timeout to complete: the
// socket's deadline is moved only when less than half of timeout is left on
// it, since setting a deadline costs timer work, and a busy session would
// otherwise pay it twice per write.
// It returns the bytes written (frame headers included).
func (c *frameConn) writeFrames(frames [][]byte, timeout time.Duration) (written int, err error) {
	if c.wire.takeover {
		c.encMu.Lock()
		defer c.encMu.Unlock()
	}
	b := outBufs.Get().(*[]byte)
	buf := (*b)[:0]
	for i, f := range frames {
		buf = c.wire.appendFrame(buf, f)
		if len(buf) >= writeChunk || i == len(frames)-1 {
			if err = c.write(buf, timeout, false); err != nil {
				break
			}
			written += len(buf)
			buf = buf[:0]
		}
	}
	if cap(buf) <= 2*writeChunk {
		*b = buf[:0]
		outBufs.Put(b)
	}
	if err != nil && c.wire.takeover {
		// The history holds frames of the failed chunk, which the client
		// never inflated: refer to nothing before the next frame (a frame
		// without back-references inflates whatever the client's window
		// holds).
		c.wire.history = c.wire.history[:0]
	}
	return written, err
}

// writeNow writes one frame uncompressed (RFC 7692 lets each message
// choose), so that it needs neither the deflate history nor a flush's
// turn: whole frames go out under mu, between a flush's chunks at worst.
// The write gets at most timeout, whatever deadline a flush left.
func (c *frameConn) writeNow(frame []byte, timeout time.Duration) error {
	op := byte(opText)
	if c.wire.binary {
		op = opBinary
	}
	return c.write(appendFrameHeader(nil, finBit|op, len(frame), frame), timeout, true)
}

// write sends whole frames in one write. With strict it gets at most
// timeout; otherwise between half of timeout and timeout (writeFrames).
func (c *frameConn) write(buf []byte, timeout time.Duration, strict bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.broken:
		return errBroken
	case c.closeSent:
		return errCloseSent
	}
	now := time.Now()
	if c.deadline.Sub(now) < timeout/2 || strict && c.deadline.After(now.Add(timeout)) {
		c.deadline = now.Add(timeout)
		c.Conn.SetWriteDeadline(c.deadline)
	}
	n, err := c.Conn.Write(buf)
	c.broken = err != nil && n > 0
	return err
}

const (
	opText    = 0x1
	opBinary  = 0x2
	opClose   = 0x8
	finBit    = 0x80
	rsv1Bit   = 0x40 // a deflated message (RFC 7692)
	maxHeader = 10   // a server frame's longest header: no mask
)

// appendFrameHeader appends a server-to-client frame header (first: FIN,
// RSV1 and the opcode; no mask, RFC 6455 section 5.2) for a payload of n
// bytes, then p.
func appendFrameHeader(b []byte, first byte, n int, p []byte) []byte {
	switch {
	case n <= 125:
		b = append(b, first, byte(n))
	case n <= 0xffff:
		b = append(b, first, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, first, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}

// drain reads and discards until the peer closes, the connection fails or
// d passes. Only for a connection whose WebSocket reader has ended.
func (c *frameConn) drain(d time.Duration) {
	c.Conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		if _, err := c.Conn.Read(buf); err != nil {
			return
		}
	}
}
