package proto2_test

import (
	"encoding/json"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/vmihailenco/msgpack/v5"
)

// A realistic 300-byte JSON event.
var event = []byte(`{"order_id":"o-7d3f9a21","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-10422","name":"Wireless Mouse","qty":1,"price":24.99},{"sku":"SKU-20871","name":"USB-C Cable 2m","qty":2,"price":9.99}],"currency":"EUR","total":44.97,"placed_at":"2026-12-03T10:15:42Z"}`)

// BenchmarkEncodeNotification: the hand-written encoder against the
// library's (reflection, the same map) and protocol 1's JSON.
func BenchmarkEncodeNotification(b *testing.B) {
	b.Run("v2-hand", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = proto2.AppendNotification(buf[:0], "m3x9k2-42-user", "user", 42, "order.placed", 1764756942000, event)
		}
		b.ReportMetric(float64(len(buf)), "bytes/frame")
	})
	b.Run("v2-library", func(b *testing.B) {
		enc := msgpack.GetEncoder()
		defer msgpack.PutEncoder(enc)
		enc.SetCustomStructTag("json")
		var w sliceWriter
		n := events.Notification{T: "n", ID: "m3x9k2-42-user", Feed: "user", Seq: 42, Type: "order.placed", TS: 1764756942000, Data: json.RawMessage(event)}
		for b.Loop() {
			w = w[:0]
			enc.Reset(&w)
			enc.SetCustomStructTag("json")
			if err := enc.Encode(&n); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(w)), "bytes/frame")
	})
	b.Run("v1-json", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = events.AppendNotification(buf[:0], "m3x9k2-42-user", "user", 42, "order.placed", 1764756942000, event)
		}
		b.ReportMetric(float64(len(buf)), "bytes/frame")
	})
}

type sliceWriter []byte

func (w *sliceWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// BenchmarkParseClientFrame: the frames the edge reads most.
func BenchmarkParseClientFrame(b *testing.B) {
	ack := proto2.AppendAck(nil, "m3x9k2-42-user")
	resume := proto2.AppendClientFrame(nil, events.ClientFrame{T: "resume", Feeds: map[string]events.Position{"user": {Epoch: "m3x9k2", Seq: 41}}})
	for name, f := range map[string][]byte{"ack-fast": ack, "resume-library": resume} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := proto2.ParseClientFrame(f, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
