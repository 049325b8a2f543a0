package wsedge

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
)

// event is a realistic 300-byte JSON event (an order with two items).
var event = []byte(`{"order_id":"o-7d3f9a21","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-10422","name":"Wireless Mouse","qty":1,"price":24.99},{"sku":"SKU-20871","name":"USB-C Cable 2m","qty":2,"price":9.99}],"currency":"EUR","total":44.97,"placed_at":"2026-12-03T10:15:42Z"}`)

// orderEvent is the user's i-th event: the keys of event, other values.
func orderEvent(i int) []byte {
	names := []string{"Wireless Mouse", "Laptop Stand", "USB-C Cable 2m", "Desk Lamp", "Notebook A5", "Coffee Beans 1kg", "Headphones", "HDMI Adapter"}
	return fmt.Appendf(nil, `{"order_id":"o-%08x","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-%05d","name":%q,"qty":%d,"price":%d.99},{"sku":"SKU-%05d","name":%q,"qty":%d,"price":%d.49}],"currency":"EUR","total":%d.47,"placed_at":"2026-12-03T10:%02d:%02dZ"}`,
		i*2654435761, (i*7919)%100000, names[i%len(names)], 1+i%3, 5+i%40, (i*104729)%100000, names[(i+3)%len(names)], 1+i%2, 3+i%20, 20+i%90, i%60, (i*7)%60)
}

// BenchmarkFrameEncode: one notification frame encoded and framed as the
// edge writes it, per protocol and compression: ns and bytes on the wire
// per frame (frame header included). The threshold is 1 here: the
// default 512 would leave this frame (about 420 bytes) uncompressed.
func BenchmarkFrameEncode(b *testing.B) {
	v1 := func(seq uint64, data []byte) []byte {
		return events.AppendNotification(nil, "m3x9k2-42-user", "user", seq, "order.placed", 1764756942000, data)
	}
	v2 := func(seq uint64, data []byte) []byte {
		return proto2.AppendNotification(nil, "m3x9k2-42-user", "user", seq, "order.placed", 1764756942000, data)
	}
	for _, c := range []struct {
		name string
		enc  func(uint64, []byte) []byte
		w    wire
	}{
		{"v1", v1, wire{}},
		{"v1-deflate", v1, wire{deflate: true, threshold: 1}},
		{"v2", v2, wire{binary: true}},
		{"v2-deflate", v2, wire{binary: true, deflate: true, threshold: 1}},
		{"v1-deflate-takeover", v1, wire{deflate: true, threshold: 1, takeover: true}},
		{"v2-deflate-takeover", v2, wire{binary: true, deflate: true, threshold: 1, takeover: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			// A stream of one user's orders: with context takeover each
			// frame may refer to the ones before.
			var frames [64][]byte
			for i := range frames {
				frames[i] = c.enc(uint64(42+i), orderEvent(i))
			}
			w := c.w
			var buf []byte
			total, i := 0, 0
			for b.Loop() {
				buf = w.appendFrame(buf[:0], frames[i%len(frames)])
				total += len(buf)
				i++
			}
			b.ReportMetric(float64(total)/float64(i), "wire-bytes/frame")
			b.ReportMetric(float64(len(frames[0])), "frame-bytes")
			b.ReportMetric(float64(len(orderEvent(0))), "event-bytes")
		})
	}
}

// BenchmarkDeflaters: the pooled klauspost/compress deflater the edge
// uses against the standard library's at levels 1 and 3, reset for each
// frame (no context takeover).
func BenchmarkDeflaters(b *testing.B) {
	frame := events.AppendNotification(nil, "m3x9k2-42-user", "user", 42, "order.placed", 1764756942000, event)
	b.Run("klauspost", func(b *testing.B) {
		var out []byte
		for b.Loop() {
			out, _ = appendDeflated(out[:0], frame, nil)
		}
		b.ReportMetric(float64(len(out)), "bytes")
	})
	for _, level := range []int{1, 3} {
		b.Run(fmt.Sprint("stdlib-", level), func(b *testing.B) {
			fw, _ := stdflate.NewWriter(nil, level)
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				fw.Reset(&out)
				fw.Write(frame)
				fw.Flush()
			}
			b.ReportMetric(float64(out.Len()-len(deflateTail)), "bytes")
		})
	}
}
