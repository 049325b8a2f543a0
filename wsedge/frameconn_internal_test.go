package wsedge

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a real loopback TCP connection, closed when
// the test ends.
func tcpPair(t *testing.T) (peer, raw net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	raw, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return peer, raw
}

// TestNoDataAfterCloseFrame: once the library has written a close frame,
// the edge's data frames are refused and never reach the socket.
func TestNoDataAfterCloseFrame(t *testing.T) {
	peer, raw := tcpPair(t)
	fc := &frameConn{Conn: raw}
	// Before the upgrade the connection carries HTTP, where a 0x88 byte
	// means nothing.
	httpBytes := []byte{0x88, 'x'}
	if _, err := fc.Write(httpBytes); err != nil {
		t.Fatal(err)
	}
	fc.upgrade()

	if _, err := fc.writeFrames([][]byte{[]byte("hi"), make([]byte, 200)}, time.Second); err != nil {
		t.Fatal(err)
	}
	closeFrame := []byte{0x88, 0x02, 0x03, 0xe8} // close, code 1000
	if _, err := fc.Write(closeFrame); err != nil {
		t.Fatal(err)
	}
	if _, err := fc.writeFrames([][]byte{[]byte("late")}, time.Second); !errors.Is(err, errCloseSent) {
		t.Fatalf("data after the close frame: err %v, want errCloseSent", err)
	}
	fc.Close()

	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	want := append(httpBytes, 0x81, 2, 'h', 'i', 0x81, 126, 0, 200)
	want = append(want, make([]byte, 200)...)
	want = append(want, closeFrame...)
	if string(got) != string(want) {
		t.Fatalf("socket got % x\nwant % x", got, want)
	}
}

// TestNothingAfterCutOffFrame: a batch whose write fails part-way leaves a
// frame half-sent; a close frame after it would be read as its payload, so
// nothing more goes out and the connection can only be dropped.
func TestNothingAfterCutOffFrame(t *testing.T) {
	peer, raw := tcpPair(t)
	fc := &frameConn{Conn: raw}
	fc.upgrade()

	big := make([]byte, 16<<20) // more than the socket buffers hold: the peer is not reading
	if _, err := fc.writeFrames([][]byte{big}, 200*time.Millisecond); err == nil {
		t.Fatal("16 MiB to a peer that does not read: no timeout")
	}
	if _, err := fc.Write([]byte{0x88, 0x02, 0x0f, 0xa8}); !errors.Is(err, errBroken) {
		t.Fatalf("close frame after a cut-off frame: err %v, want errBroken", err)
	}
	if _, err := fc.writeFrames([][]byte{[]byte("late")}, time.Second); !errors.Is(err, errBroken) {
		t.Fatalf("data after a cut-off frame: err %v, want errBroken", err)
	}
	fc.Close()

	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	want := appendFrameHeader(nil, finBit|opText, len(big), big)
	if len(got) == 0 || len(got) >= len(want) || string(got) != string(want[:len(got)]) {
		t.Fatalf("peer got %d bytes: want a proper prefix of the %d-byte frame and nothing else", len(got), len(want))
	}
}

func TestAppendFrameHeaderLengths(t *testing.T) {
	for _, c := range []struct {
		n      int
		header []byte
	}{
		{0, []byte{0x81, 0}},
		{125, []byte{0x81, 125}},
		{126, []byte{0x81, 126, 0, 126}},
		{65535, []byte{0x81, 126, 0xff, 0xff}},
		{65536, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		b := appendFrameHeader(nil, finBit|opText, c.n, make([]byte, c.n))
		if string(b[:len(c.header)]) != string(c.header) || len(b) != len(c.header)+c.n {
			t.Errorf("%d bytes: header % x, length %d; want % x, %d", c.n, b[:min(len(b), 10)], len(b), c.header, len(c.header)+c.n)
		}
	}
}

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

// TestLargeBatchInChunks: a batch larger than writeChunk goes out in
// several writes of whole frames, byte for byte as one buffer would.
func TestLargeBatchInChunks(t *testing.T) {
	peer, raw := tcpPair(t)
	cc := &countingConn{Conn: raw}
	fc := &frameConn{Conn: cc}
	fc.upgrade()

	var frames [][]byte
	var want []byte
	for i := range 10 {
		f := make([]byte, 60<<10)
		f[0] = byte(i)
		frames = append(frames, f)
		want = appendFrameHeader(want, finBit|opText, len(f), f)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if _, err := fc.writeFrames(frames, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	fc.Close()
	if b := <-got; string(b) != string(want) {
		t.Fatalf("peer got %d bytes, want the %d bytes of the 10 frames", len(b), len(want))
	}
	// A write goes out once it holds writeChunk bytes or more of whole
	// frames: 5 frames of 60 KiB each time.
	if cc.writes != 2 {
		t.Fatalf("%d writes for %d bytes, want 2 (5 whole frames each)", cc.writes, len(want))
	}
}

// failingConn fails its writes, with nothing written, while fail is set.
type failingConn struct {
	net.Conn
	fail bool
}

func (c *failingConn) Write(p []byte) (int, error) {
	if c.fail {
		return 0, os.ErrDeadlineExceeded
	}
	return c.Conn.Write(p)
}

// TestFailedWriteLeavesNoHistory: with context takeover, a frame whose
// write failed (nothing sent) must not be referred to by the next one: the
// client never inflated it.
func TestFailedWriteLeavesNoHistory(t *testing.T) {
	peer, raw := tcpPair(t)
	fc := &frameConn{Conn: &failingConn{Conn: raw}, wire: wire{deflate: true, threshold: 1, takeover: true}}
	fc.upgrade()
	first := bytes.Repeat([]byte("first notification "), 10)
	unsent := bytes.Repeat([]byte("a frame the client never got "), 10)
	if _, err := fc.writeFrames([][]byte{first}, time.Second); err != nil {
		t.Fatal(err)
	}
	fc.Conn.(*failingConn).fail = true
	if _, err := fc.writeFrames([][]byte{unsent}, time.Second); err == nil {
		t.Fatal("the failing write succeeded")
	}
	fc.Conn.(*failingConn).fail = false
	if _, err := fc.writeFrames([][]byte{unsent}, time.Second); err != nil { // the same bytes again
		t.Fatal(err)
	}
	fc.Close()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	// One inflater with its window kept across messages, as the client.
	var stream bytes.Buffer
	for range 2 {
		b, payload, rest := readFrame(t, got)
		if b&rsv1Bit == 0 {
			t.Fatalf("frame not deflated: % x", b)
		}
		stream.Write(payload)
		stream.Write(deflateTail)
		got = rest
	}
	r := flate.NewReader(&stream)
	for _, want := range [][]byte{first, unsent} {
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, want) {
			t.Fatalf("inflated %q, %v; want %q", buf, err, want)
		}
	}
}

// TestWriteNowIsUncompressedAndBounded: the frame written ahead of a close
// goes uncompressed, takes no part in the deflate history, and gets at most
// its own timeout even when a flush left a longer deadline.
func TestWriteNowIsUncompressedAndBounded(t *testing.T) {
	peer, raw := tcpPair(t)
	fc := &frameConn{Conn: raw, wire: wire{deflate: true, threshold: 1, takeover: true}}
	fc.upgrade()
	if _, err := fc.writeFrames([][]byte{bytes.Repeat([]byte("x"), 100)}, time.Hour); err != nil {
		t.Fatal(err)
	}
	history := string(fc.wire.history)
	if err := fc.writeNow([]byte(`{"t":"error","code":"rate_limited"}`), time.Second); err != nil {
		t.Fatal(err)
	}
	if string(fc.wire.history) != history {
		t.Fatal("writeNow changed the deflate history")
	}
	if until := time.Until(fc.deadline); until > time.Second {
		t.Fatalf("deadline %v away after writeNow, want at most its 1 s", until)
	}
	fc.Close()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	_, _, rest := readFrame(t, got)
	b, payload, _ := readFrame(t, rest)
	if b != finBit|opText || string(payload) != `{"t":"error","code":"rate_limited"}` {
		t.Fatalf("writeNow sent % x %q", b, payload)
	}
}
