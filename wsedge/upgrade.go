package wsedge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WebSocket upgrades outside net/http's connection handling. Behind
// Edge.Listener, a request for /ws is read and upgraded by the edge itself;
// every other request (the HTTP API, health checks) goes to net/http as
// before. Set-up was a fifth of an edge's CPU per connection in net/http's
// own machinery (measured at 10,000 connects, edge-connect.pprof): its
// per-connection 4 KiB read buffer, 4 KiB write buffer and 2 KiB response
// buffer, none of which come back to its pools once a connection is
// hijacked (7 of the 22 KB allocated per connect), the Date header it
// formats for the 101, and the growth of a fresh goroutine's stack through
// the deep calls of the handshake and set-up (copystack: 10% of the
// profile). Here the request is read with a pooled reader, the 101 is
// written in one write, and handshakes run on a few long-lived workers
// whose stacks have already grown. The session's reader still starts on a
// goroutine of its own, with a small stack (startReader).

// The request's own limits are Config.HandshakeTimeout and
// MaxHandshakeBytes (herald sets them to its HTTP servers' ReadHeaderTimeout
// and MaxHeaderBytes).
const (
	// upgradeWorkerIdle is how long a handshake worker waits for the next
	// connection before it exits.
	upgradeWorkerIdle = 5 * time.Second
	// upgradeWriteTimeout bounds writing the handshake's response.
	upgradeWriteTimeout = 10 * time.Second
)

var upgradeReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// muxListener accepts connections on its inner listener (a frameListener),
// upgrades requests for /ws itself, and hands every other connection to
// the http.Server that serves it through Accept.
type muxListener struct {
	inner   net.Listener
	e       *Edge
	handler http.Handler // the server's, for /ws requests

	plain    chan net.Conn // connections for net/http
	work     chan net.Conn // to a worker waiting for one
	done     chan struct{} // closed by Close
	loopDone chan struct{} // closed when the accept loop has ended (or never will start)

	start     sync.Once
	closeOnce sync.Once
	acceptErr error // why the accept loop ended; read after plain is closed
	workers   sync.WaitGroup

	mu      sync.Mutex
	reading map[net.Conn]struct{} // connections whose request is being read
	closed  bool
}

func newMuxListener(inner net.Listener, e *Edge, h http.Handler) *muxListener {
	return &muxListener{inner: inner, e: e, handler: h, plain: make(chan net.Conn), work: make(chan net.Conn),
		done: make(chan struct{}), loopDone: make(chan struct{}), reading: map[net.Conn]struct{}{}}
}

// Accept returns the next connection that is not a WebSocket upgrade. The
// listener's accept loop starts with the first call (the server's Serve)
// and ends with Close.
func (l *muxListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	c, ok := <-l.plain
	if !ok {
		return nil, l.acceptErr
	}
	return c, nil
}

func (l *muxListener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting and returns once every worker has ended: idle
// ones at once, connections still sending their request are closed, and
// a handshake under way finishes (its set-up is bounded: connect.go).
func (l *muxListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.start.Do(func() { // never served: Accept returns at once from now on
			l.acceptErr = net.ErrClosed
			close(l.plain)
			close(l.loopDone)
		})
		<-l.loopDone // no worker starts after this
		l.mu.Lock()
		l.closed = true
		for c := range l.reading {
			c.Close()
		}
		l.mu.Unlock()
		l.workers.Wait()
	})
	return err
}

// reading marks c as sending its request (on true) or done with it; false
// when the listener is closed and c with it.
func (l *muxListener) track(c net.Conn, on bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !on {
		delete(l.reading, c)
		return true
	}
	if l.closed {
		c.Close()
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

// acceptLoop owns the inner listener's Accept. A temporary failure (out of
// descriptors) is retried after a growing pause, as net/http does; any
// other ends the loop and, through Accept, the server.
func (l *muxListener) acceptLoop() {
	defer close(l.loopDone)
	var pause time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				pause = min(max(2*pause, 5*time.Millisecond), time.Second)
				l.e.log.Warn("accept failed; retrying", "err", err, "pause", pause)
				select {
				case <-time.After(pause):
					continue
				case <-l.done:
					err = net.ErrClosed // not the temporary error: the server must stop
				}
			}
			l.acceptErr = err
			close(l.plain)
			return
		}
		pause = 0
		select {
		case l.work <- c: // an idle worker takes it
		default:
			l.workers.Add(1)
			go l.worker(c)
		}
	}
}

// isTemporary reports the errors net/http retries an Accept after.
func isTemporary(err error) bool {
	te, ok := err.(interface{ Temporary() bool })
	return ok && te.Temporary()
}

// worker serves connections until none comes for upgradeWorkerIdle or the
// listener closes.
func (l *muxListener) worker(c net.Conn) {
	defer l.workers.Done()
	idle := time.NewTimer(upgradeWorkerIdle)
	defer idle.Stop()
	for {
		l.serve(c)
		idle.Reset(upgradeWorkerIdle)
		select {
		case c = <-l.work:
		case <-idle.C:
			return
		case <-l.done:
			return
		}
	}
}

// serve reads the start of c's first request: a GET of /ws is upgraded
// here, anything else goes to net/http with the bytes read so far.
func (l *muxListener) serve(c net.Conn) {
	if !l.track(c, true) {
		return
	}
	headerBy := time.Now().Add(l.e.cfg.HandshakeTimeout)
	c.SetReadDeadline(headerBy)
	// net/http's slack above MaxHeaderBytes, so that /ws takes what any
	// other request may send
	limit := &io.LimitedReader{R: c, N: int64(l.e.cfg.MaxHandshakeBytes) + 4096}
	br := upgradeReaders.Get().(*bufio.Reader)
	br.Reset(limit)
	defer func() {
		br.Reset(nil)
		upgradeReaders.Put(br)
	}()
	head, err := br.Peek(len("GET /ws "))
	if isUpgradePath(head) {
		req, err := http.ReadRequest(br)
		l.track(c, false)
		l.upgrade(c, br, limit, req, err)
		return
	}
	l.track(c, false)
	if err != nil && br.Buffered() == 0 {
		c.Close() // nothing came, or not in time
		return
	}
	// net/http reads on from what was peeked
	b, _ := br.Peek(br.Buffered())
	pc := &prefixConn{Conn: c, pending: bytes.Clone(b), headerBy: headerBy}
	c.SetReadDeadline(time.Time{}) // net/http sets its own, held to headerBy
	select {
	case l.plain <- pc:
	case <-l.done:
		c.Close()
	}
}

// upgrade serves a request for /ws (or the error reading it).
func (l *muxListener) upgrade(c net.Conn, br *bufio.Reader, limit *io.LimitedReader, req *http.Request, err error) {
	if err == nil && req.ProtoAtLeast(1, 1) && req.Host == "" { // two Host headers fail ReadRequest
		err = errors.New("HTTP/1.1 request without a Host header")
	}
	if err != nil {
		status := http.StatusBadRequest
		if limit.N == 0 {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		writeResponse(c, status, nil, []byte(http.StatusText(status)+"\n"))
		closeAfterResponse(c)
		return
	}
	c.SetReadDeadline(time.Time{})
	limit.N = 1 << 62 // the reader may read on into the first frames; the library limits those
	req.RemoteAddr = c.RemoteAddr().String()
	ctx := l.e.ConnContext(context.Background(), c)
	w := &upgradeWriter{conn: c, br: br, header: make(http.Header, 4)}
	defer func() {
		// As net/http does: a panic ends this connection, not the edge.
		if v := recover(); v != nil {
			buf := make([]byte, 16<<10)
			l.e.log.Error("panic serving an upgrade", "remote", req.RemoteAddr, "panic", fmt.Sprint(v),
				"stack", string(buf[:runtime.Stack(buf, false)]))
			if !w.hijacked {
				c.Close()
			}
		}
	}()
	l.handler.ServeHTTP(w, req.WithContext(ctx))
	if !w.hijacked {
		w.finish()
		closeAfterResponse(c)
	}
}

// closeAfterResponse closes c after an error response, as net/http does:
// the write side first, then a short drain of what the client is still
// sending, so that the close does not reset the connection before the
// client has read the response.
func closeAfterResponse(c net.Conn) {
	inner := c
	if fc := frameConnOf(c); fc != nil {
		inner = fc.Conn
	}
	if cw, ok := inner.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(c, 256<<10))
	}
	c.Close()
}

// isUpgradePath reports whether a request line starts with "GET /ws"
// followed by a space or a query.
func isUpgradePath(head []byte) bool {
	return len(head) == len("GET /ws ") && string(head[:7]) == "GET /ws" && (head[7] == ' ' || head[7] == '?')
}

// prefixConn is a connection handed to net/http with the bytes already
// read from it.
type prefixConn struct {
	net.Conn
	pending []byte
	// headerBy is when the first request's header must be in, counted
	// from when the listener started reading it: net/http's first read
	// deadline (its header timeout, counted from when it got the
	// connection) is held to it, so that a slow client does not get the
	// sniffing time and net/http's whole timeout on top.
	headerBy time.Time
}

// SetReadDeadline holds net/http's first deadline, the first request's
// header timeout, to headerBy. net/http sets it before it starts reading
// and before any other goroutine of the connection exists.
func (c *prefixConn) SetReadDeadline(t time.Time) error {
	if !c.headerBy.IsZero() {
		if t.IsZero() || t.After(c.headerBy) {
			t = c.headerBy
		}
		c.headerBy = time.Time{}
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// upgradeWriter is the http.ResponseWriter of an upgrade: the 101 and its
// headers go out in one write when the library hijacks the connection; any
// other response (a handshake refused) is written whole by finish, and the
// connection closed.
type upgradeWriter struct {
	conn     net.Conn
	br       *bufio.Reader
	header   http.Header
	status   int
	body     []byte
	hijacked bool
}

func (w *upgradeWriter) Header() http.Header { return w.header }

func (w *upgradeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *upgradeWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, p...)
	return len(p), nil
}

// Hijack writes the response head and hands over the connection; what
// the client sent after its request is in the reader.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	if w.status != 0 {
		if err := writeHead(w.conn, appendHead(nil, w.status, w.header, -1)); err != nil {
			w.conn.Close()
			return nil, nil, err
		}
	}
	return w.conn, bufio.NewReadWriter(w.br, bufio.NewWriterSize(w.conn, 16)), nil
}

// finish writes a response that was not an upgrade.
func (w *upgradeWriter) finish() {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	writeResponse(w.conn, status, w.header, w.body)
}

func writeResponse(c net.Conn, status int, h http.Header, body []byte) {
	b := appendHead(nil, status, h, len(body))
	writeHead(c, append(b, body...))
}

func writeHead(c net.Conn, b []byte) error {
	c.SetWriteDeadline(time.Now().Add(upgradeWriteTimeout))
	_, err := c.Write(b)
	c.SetWriteDeadline(time.Time{})
	return err
}

// appendHead appends an HTTP/1.1 status line and headers; with a body
// length (>= 0) also Content-Length and Connection: close.
func appendHead(b []byte, status int, h http.Header, bodyLen int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\n"...)
	for k, vs := range h {
		if bodyLen >= 0 && (k == "Content-Length" || k == "Connection") {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") || strings.ContainsAny(k, "\r\n: ") {
				continue // never split the response
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	if bodyLen >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(bodyLen), 10)
		b = append(b, "\r\nConnection: close\r\n"...)
	}
	return append(b, "\r\n"...)
}
