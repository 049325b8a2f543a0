package store

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
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

// BenchmarkHandoff measures the whole life of one ACK position on the edge:
// Ack, the writer's synced commit, then the Redis hand-off (Unflushed in
// pages of 1000, as wsedge does, and MarkFlushed). One op is one round of
// one position per device; ns/position is the cost per position and
// handoff-ns/position the part spent in Unflushed and MarkFlushed. 10,000
// devices is a second of acks at 10k/s; 100,000 is a backlog after Redis
// was unreachable for a while.
func BenchmarkHandoff(b *testing.B) {
	for _, devices := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("devices=%d", devices), func(b *testing.B) {
			benchmarkHandoff(b, devices)
		})
	}
}

func benchmarkHandoff(b *testing.B, devices int) {
	s := openTest(b, "", Config{})
	type dev struct{ user, device string }
	devs := make([]dev, devices)
	for i := range devs {
		devs[i] = dev{fmt.Sprintf("u%03d", i%997), fmt.Sprintf("d%06d", i)}
	}
	var handoff time.Duration
	rounds := 0
	b.ReportAllocs()
	for b.Loop() {
		rounds++
		for _, d := range devs {
			if err := s.Ack(pos("acme", d.user, d.device, "user", "e1", uint64(rounds))); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Flush(b.Context()); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		flushed := 0
		for {
			ps, err := s.Unflushed(1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(ps) == 0 {
				break
			}
			if err := s.MarkFlushed(ps); err != nil {
				b.Fatal(err)
			}
			flushed += len(ps)
		}
		handoff += time.Since(start)
		if flushed != devices {
			b.Fatalf("round %d: handed off %d positions, want %d", rounds, flushed, devices)
		}
	}
	n := float64(rounds * devices)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/position")
	b.ReportMetric(float64(handoff.Nanoseconds())/n, "handoff-ns/position")
}
