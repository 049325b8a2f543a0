package wsedge

import (
	"bytes"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692) on the edge's own frame writer. The
// library (coder/websocket) negotiates the extension and inflates client
// frames (within the read limit, so a frame that inflates past it is closed
// with 1009); the edge deflates the frames it writes itself, with RSV1 set.
//
// Without context takeover (the default) every frame is deflated on its
// own by a writer from a pool, reset for each frame: a session holds no
// compression state, so an idle connection costs what it costs without
// compression. With context takeover (Config.CompressionContextTakeover)
// the client keeps its inflater's window across frames; the edge keeps
// only the last historySize bytes it deflated for the session, and
// deflates the next frame with them as the dictionary, so repeated keys
// and ids cost a few bytes each. It still asks the client not to keep its
// own context (client_no_context_takeover), so that the library keeps no
// 32 KiB window per session for client frames.

// Compression settings, defaults of Config.
const (
	defaultCompressionThreshold = 512
	historySize                 = 512
)

// deflateTail ends every flushed deflate stream; RFC 7692 leaves it out
// of the frame (section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflaters are reset for each frame. klauspost/compress: two to three
// times faster than the standard library's for the same size on
// notifications (BenchmarkDeflaters). Level 3, not 1: levels 1 and 2 give
// up early on a protocol 2 frame (its binary header looks incompressible
// to them) and store it whole, where level 3 takes a fifth off it for
// about the same time.
const deflateLevel = 3

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, deflateLevel)
	return &deflater{fw: w}
}}

// deflater is a pooled writer with the buffer it writes to.
type deflater struct {
	fw  *flate.Writer
	out appendWriter
}

// appendWriter appends what it is given to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// appendDeflated appends p deflated as one RFC 7692 message (the tail
// removed), with dict as the preceding history (nil for none). ok is
// false when deflate failed; b is then unchanged.
func appendDeflated(b, p, dict []byte) (_ []byte, ok bool) {
	d := deflaters.Get().(*deflater)
	d.out.b = b
	// Always ResetDict, never Reset: a writer keeps the dictionary it was
	// last given and Reset would deflate against it (another session's
	// history, which that client never had).
	d.fw.ResetDict(&d.out, dict)
	_, err := d.fw.Write(p)
	if err == nil {
		err = d.fw.Flush()
	}
	out := d.out.b
	d.out.b = nil
	deflaters.Put(d) // it still refers to dict: the next use replaces it
	if err != nil || !bytes.HasSuffix(out[len(b):], deflateTail) {
		return b, false
	}
	return out[:len(out)-len(deflateTail)], true
}

// wire is how a session's frames go out: the protocol's opcode and,
// when negotiated, compression. It is set before the session's first
// frame and read-only after that, except history, which is guarded by
// frameConn.encMu.
type wire struct {
	binary    bool // protocol 2: binary frames; text (protocol 1) otherwise
	deflate   bool // permessage-deflate negotiated
	threshold int  // frames shorter than this go uncompressed
	takeover  bool // context takeover: history is the next frame's dictionary
	history   []byte
}

// negotiatedDeflate reads the Sec-WebSocket-Extensions response the
// library wrote: whether permessage-deflate is on and whether the server
// may keep its context.
func negotiatedDeflate(ext string) (on, takeover bool) {
	if !strings.Contains(ext, "permessage-deflate") {
		return false, false
	}
	return true, !strings.Contains(ext, "server_no_context_takeover")
}

// appendFrame appends p as one unfragmented server frame: deflated with
// RSV1 set when compression is on, p is at least the threshold and
// deflating makes it smaller; as it is otherwise.
func (w *wire) appendFrame(b, p []byte) []byte {
	op := byte(opText)
	if w.binary {
		op = opBinary
	}
	if !w.deflate || len(p) < w.threshold {
		return appendFrameHeader(b, finBit|op, len(p), p)
	}
	// Deflate after room for the longest header, then move the payload
	// next to the header it needs.
	start := len(b)
	b = append(b, make([]byte, maxHeader)...)
	var dict []byte
	if w.takeover {
		dict = w.history
	}
	b, ok := appendDeflated(b, p, dict)
	n := len(b) - start - maxHeader
	if !ok || n >= len(p) {
		return appendFrameHeader(b[:start], finBit|op, len(p), p)
	}
	if w.takeover {
		w.remember(p)
	}
	h := appendFrameHeader(b[start:start], finBit|rsv1Bit|op, n, nil)
	copy(b[start+len(h):], b[start+maxHeader:])
	return b[:start+len(h)+n]
}

// remember keeps the last historySize bytes the client inflated: only
// deflated frames enter its window.
func (w *wire) remember(p []byte) {
	if len(p) >= historySize {
		w.history = append(w.history[:0], p[len(p)-historySize:]...)
		return
	}
	if w.history == nil {
		w.history = make([]byte, 0, historySize)
	}
	if drop := len(w.history) + len(p) - historySize; drop > 0 {
		w.history = append(w.history[:0], w.history[drop:]...)
	}
	w.history = append(w.history, p...)
}
