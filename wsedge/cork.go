package wsedge

import (
	"context"
	"net"
	"sync"
	"time"
)

// Write coalescing. coder/websocket flushes every message to the socket, one
// write syscall each. When a session has several frames queued, the writer
// corks the connection, writes them all into one buffer and uncorks it with
// a single write. Listener and ConnContext install the wrapper; without them
// (httptest.NewServer) every frame is written on its own.

type corkKey struct{}

// Listener wraps ln so that the edge can coalesce writes on its connections.
// Serve with an http.Server whose ConnContext is Edge.ConnContext.
func (e *Edge) Listener(ln net.Listener) net.Listener { return corkListener{ln} }

// ConnContext is the http.Server ConnContext that hands the edge its
// connection wrapper.
func (e *Edge) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*corkConn); ok {
		return context.WithValue(ctx, corkKey{}, cc)
	}
	return ctx
}

type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

// corkConn buffers writes between cork and uncork.
type corkConn struct {
	net.Conn
	mu       sync.Mutex
	corked   bool
	buf      *[]byte
	deadline time.Time // the socket's write deadline; zero when none
}

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Write writes p, or buffers it while corked. An uncorked write (a ping or
// a close frame, which carry their own timeouts) runs without a deadline.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		if !c.deadline.IsZero() {
			c.deadline = time.Time{}
			c.Conn.SetWriteDeadline(c.deadline)
		}
		return c.Conn.Write(p)
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.buf = corkBufs.Get().(*[]byte)
	c.mu.Unlock()
}

// uncork writes what was buffered in one write, which gets between half of
// timeout and timeout to complete. The socket's deadline is moved only when
// less than half of timeout is left on it: setting a deadline costs timer
// work, and a busy session would otherwise pay it twice per write.
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		if now := time.Now(); c.deadline.Sub(now) < timeout/2 {
			c.deadline = now.Add(timeout)
			c.Conn.SetWriteDeadline(c.deadline)
		}
		_, err = c.Conn.Write(*b)
	}
	if cap(*b) <= 256<<10 {
		*b = (*b)[:0]
		corkBufs.Put(b)
	}
	return err
}
