package wsedge

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/proto2"
)

// readFrame reads one unmasked server frame off b: its first byte, its
// payload and the rest of b.
func readFrame(t *testing.T, b []byte) (first byte, payload, rest []byte) {
	t.Helper()
	if len(b) < 2 {
		t.Fatalf("no frame header in % x", b)
	}
	first, n, h := b[0], int(b[1]&0x7f), 2
	switch n {
	case 126:
		n, h = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		n, h = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < h+n {
		t.Fatalf("frame of %d bytes cut at %d", n, len(b)-h)
	}
	return first, b[h : h+n], b[h+n:]
}

func inflate(t *testing.T, r io.Reader) []byte {
	t.Helper()
	out, err := io.ReadAll(flate.NewReader(r))
	if err != nil && err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	return out
}

var notification = []byte(`{"t":"n","id":"m3x9k2-42-user","feed":"user","seq":42,"type":"order.placed","ts":1764756942000,"data":{"order_id":"o-7d3f9a21","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-10422","name":"Wireless Mouse","qty":1,"price":24.99},{"sku":"SKU-20871","name":"USB-C Cable 2m","qty":2,"price":9.99}],"currency":"EUR","total":44.97,"placed_at":"2026-12-03T10:15:42Z"}}`)

// v2Notification is a protocol 2 frame that levels 1 and 2 of the deflater
// would store whole.
var v2Notification = proto2.AppendNotification(nil, "m3x9k2-42-user", "user", 42, "bench.load", 1764756942000,
	[]byte(`{"t":1764756942000123,"n":4242,"r":"ab12cd34","order_id":"o-7d3f9a21","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-10422","name":"Wireless Mouse","qty":1,"price":24.99}],"currency":"EUR","total":44.47,"placed_at":"2026-12-03T10:15:42Z"}`))

// Frames at or above the threshold go deflated with RSV1 (and inflate to
// the frame); smaller ones, and ones deflate would not shrink, go as they
// are, with the protocol's opcode either way.
func TestWireAppendFrame(t *testing.T) {
	random := make([]byte, 2000)
	rand.Read(random)
	big := bytes.Repeat(notification, 200) // a 16-bit and a 64-bit length
	cases := []struct {
		name     string
		w        wire
		p        []byte
		deflated bool
		first    byte
	}{
		{"off", wire{}, notification, false, 0x81},
		{"off binary", wire{binary: true}, notification, false, 0x82},
		{"below threshold", wire{deflate: true, threshold: 512}, notification, false, 0x81},
		{"at threshold", wire{deflate: true, threshold: len(notification)}, notification, true, 0xc1},
		{"binary", wire{binary: true, deflate: true, threshold: 1}, notification, true, 0xc2},
		{"large", wire{deflate: true, threshold: 512}, big, true, 0xc1},
		{"protocol 2 notification", wire{binary: true, deflate: true, threshold: 1}, v2Notification, true, 0xc2},
		{"incompressible", wire{deflate: true, threshold: 1}, random, false, 0x81},
		{"empty", wire{deflate: true, threshold: 1}, nil, false, 0x81},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prefix := []byte("before")
			b := c.w.appendFrame(bytes.Clone(prefix), c.p)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatal("appendFrame changed what was in the buffer")
			}
			first, payload, rest := readFrame(t, b[len(prefix):])
			if first != c.first || len(rest) != 0 {
				t.Fatalf("first byte %#x, %d bytes after the frame; want %#x, none", first, len(rest), c.first)
			}
			got := payload
			if c.deflated {
				if len(payload) >= len(c.p) {
					t.Fatalf("deflated to %d bytes from %d", len(payload), len(c.p))
				}
				got = inflate(t, io.MultiReader(bytes.NewReader(payload), bytes.NewReader(deflateTail)))
			}
			if !bytes.Equal(got, c.p) {
				t.Fatalf("frame holds %d bytes, not the %d given", len(got), len(c.p))
			}
		})
	}
}

// With context takeover each deflated frame may refer to the ones before
// it: one inflater that keeps its window (a browser's) reads them all, and
// later frames are much smaller than the first.
func TestWireContextTakeover(t *testing.T) {
	w := wire{deflate: true, threshold: 100, takeover: true}
	var frames [][]byte
	for i := range 10 {
		f := bytes.Replace(notification, []byte("o-7d3f9a21"), []byte("o-"+strings.Repeat(string(rune('a'+i)), 8)), 1)
		frames = append(frames, f)
	}
	frames = append(frames, []byte(`{"t":"pong"}`)) // below the threshold: not in the window
	frames = append(frames, notification)
	var stream bytes.Buffer
	var sizes []int
	for _, f := range frames {
		first, payload, _ := readFrame(t, w.appendFrame(nil, f))
		if first&rsv1Bit == 0 {
			if len(f) >= w.threshold {
				t.Fatalf("frame of %d bytes not deflated", len(f))
			}
			continue
		}
		sizes = append(sizes, len(payload))
		stream.Write(payload)
		stream.Write(deflateTail)
	}
	r := flate.NewReader(&stream)
	for _, f := range frames {
		if len(f) < w.threshold {
			continue
		}
		got := make([]byte, len(f))
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, f) {
			t.Fatalf("inflated %q, %v; want %q", got, err, f)
		}
	}
	if sizes[1] > sizes[0]/3 {
		t.Fatalf("deflated sizes %v: the second frame did not use the first", sizes)
	}
	if len(w.history) != min(historySize, 11*len(notification)) {
		t.Fatalf("history holds %d bytes", len(w.history))
	}
}

func TestNegotiatedDeflate(t *testing.T) {
	for ext, want := range map[string][2]bool{
		"": {false, false},
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover": {true, false},
		"permessage-deflate; client_no_context_takeover":                             {true, true},
		"permessage-deflate": {true, true},
	} {
		on, takeover := negotiatedDeflate(ext)
		if on != want[0] || takeover != want[1] {
			t.Errorf("%q: on %v takeover %v, want %v", ext, on, takeover, want)
		}
	}
}
