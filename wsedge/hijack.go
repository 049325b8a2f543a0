package wsedge

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Smaller per-connection buffers. After the upgrade net/http hands
// coder/websocket a 4 KiB read buffer and a 4 KiB write buffer, which it
// keeps for the connection's life: more than half of an idle session's
// memory. Client frames are small (acks, pings), and the edge encodes its
// own data frames (frameConn), so it hijacks through this wrapper and gives
// the library small buffers instead: the write buffer still holds any
// control frame (at most 2+125 bytes) whole, which frameConn relies on.

const (
	connReadBuffer  = 256
	connWriteBuffer = 128
)

// smallBuffers wraps the ResponseWriter passed to websocket.Accept.
type smallBuffers struct {
	http.ResponseWriter
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Keep what the client already sent after its upgrade request: it is
	// in net/http's buffer, so it goes first, and stays buffered in the new
	// reader (the library keeps a reader's buffered bytes).
	var src io.Reader = conn
	n := brw.Reader.Buffered()
	if n > 0 {
		b, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn)
	}
	br := bufio.NewReaderSize(src, max(connReadBuffer, n))
	if n > 0 {
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	if err := brw.Writer.Flush(); err != nil { // nothing is pending after the 101; be sure
		conn.Close()
		return nil, nil, err
	}
	if fc := frameConnOf(conn); fc != nil { // also an upgrade net/http served (a keep-alive connection's later request)
		fc.upgrade()
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the real writer.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }
