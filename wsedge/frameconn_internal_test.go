package wsedge

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestNoDataAfterCloseFrame: once the library has written a close frame,
// the edge's data frames are refused and never reach the socket.
func TestNoDataAfterCloseFrame(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fc := &frameConn{Conn: raw}

	if err := fc.writeText([][]byte{[]byte("hi"), make([]byte, 200)}, time.Second); err != nil {
		t.Fatal(err)
	}
	closeFrame := []byte{0x88, 0x02, 0x03, 0xe8} // close, code 1000
	if _, err := fc.Write(closeFrame); err != nil {
		t.Fatal(err)
	}
	if err := fc.writeText([][]byte{[]byte("late")}, time.Second); !errors.Is(err, errCloseSent) {
		t.Fatalf("data after the close frame: err %v, want errCloseSent", err)
	}
	fc.Close()

	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{0x81, 2, 'h', 'i', 0x81, 126, 0, 200}, make([]byte, 200)...)
	want = append(want, closeFrame...)
	if string(got) != string(want) {
		t.Fatalf("socket got % x\nwant % x", got, want)
	}
}

func TestAppendTextFrameLengths(t *testing.T) {
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
		b := appendTextFrame(nil, make([]byte, c.n))
		if string(b[:len(c.header)]) != string(c.header) || len(b) != len(c.header)+c.n {
			t.Errorf("%d bytes: header % x, length %d; want % x, %d", c.n, b[:min(len(b), 10)], len(b), c.header, len(c.header)+c.n)
		}
	}
}
