package wsedge

import (
	"bytes"
	"io"
	"testing"
)

// Every size deflates to something the standard inflater reads back.
func TestDeflateEverySize(t *testing.T) {
	for n := 1; n <= len(notification); n++ {
		p := notification[:n]
		b, ok := appendDeflated(nil, p, nil)
		if !ok {
			t.Fatalf("%d bytes: deflate failed", n)
		}
		got := inflate(t, io.MultiReader(bytes.NewReader(b), bytes.NewReader(deflateTail)))
		if !bytes.Equal(got, p) {
			t.Fatalf("%d bytes: inflated %q (% x)", n, got, b)
		}
	}
}

// A pooled deflater used with one session's history and then for a frame
// without context takeover must not refer to that history: the client of
// the second frame never had it.
func TestDeflaterForgetsDictionary(t *testing.T) {
	for range 50 { // the pool may drop writers; repeat to reuse one
		appendDeflated(nil, notification, notification)
		b, _ := appendDeflated(nil, notification, nil)
		got := inflate(t, io.MultiReader(bytes.NewReader(b), bytes.NewReader(deflateTail)))
		if !bytes.Equal(got, notification) {
			t.Fatalf("inflated %q", got)
		}
	}
}
