package store

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkAck measures the asynchronous hot path: many devices acking
// concurrently, coalesced in memory and committed by the background writer.
// The timed region includes a final Flush, so ns/op covers the disk work.
func BenchmarkAck(b *testing.B) {
	const devices = 10000
	s := openTest(b, "", Config{})
	ids := make([]string, devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%05d", i)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			p := pos("acme", "u"+ids[n%devices][1:3], ids[n%devices], "user", "e1", n)
			if err := s.Ack(p); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := s.Flush(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	batches := metricValue(b, s, "herald_store_flush_batches_total")
	written := metricValue(b, s, "herald_store_flush_positions_total")
	b.ReportMetric(batches, "commits")
	sum := metricValue(b, s, "herald_store_flush_duration_seconds_sum")
	b.ReportMetric(1000*sum/max(batches, 1), "ms/commit")
	b.ReportMetric(float64(b.N)/max(written, 1), "acks/written")
}

// BenchmarkAckSync measures one goroutine waiting for each position to be
// synced: one commit (one fsync) per op.
func BenchmarkAckSync(b *testing.B) {
	s := openTest(b, "", Config{})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.AckSync(b.Context(), pos("acme", "u1", fmt.Sprintf("d%d", i%1000), "user", "e1", uint64(i+1))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAckSyncParallel measures concurrent AckSync callers (a drain of
// many connections), which share commits.
func BenchmarkAckSyncParallel(b *testing.B) {
	s := openTest(b, "", Config{})
	var next atomic.Uint64
	b.SetParallelism(16) // 16 goroutines per GOMAXPROCS
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			if err := s.AckSync(b.Context(), pos("acme", "u1", fmt.Sprintf("d%d", n%1000), "user", "e1", n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
