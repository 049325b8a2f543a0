package store

import "github.com/prometheus/client_golang/prometheus"

// metrics are the Store's collectors. They are not registered anywhere:
// cmd/herald registers Collectors() on its registry.
type metrics struct {
	ackWrites      prometheus.Counter
	ackCoalesced   prometheus.Counter
	ackBlocked     prometheus.Counter
	flushBatches   prometheus.Counter
	flushPositions prometheus.Counter
	flushErrors    prometheus.Counter
	flushDuration  prometheus.Histogram
	unflushed      prometheus.Gauge
	pending        prometheus.GaugeFunc
}

func newMetrics(pendingLen func() float64) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &metrics{
		ackWrites: counter("herald_store_ack_writes_total",
			"ACK positions accepted by Ack and AckSync."),
		ackCoalesced: counter("herald_store_ack_coalesced_total",
			"ACK positions merged into a position already pending for the same device and feed."),
		ackBlocked: counter("herald_store_ack_blocked_total",
			"Ack calls that waited because the pending set was full."),
		flushBatches: counter("herald_store_flush_batches_total",
			"Synced pebble batches committed by the ACK writer."),
		flushPositions: counter("herald_store_flush_positions_total",
			"ACK positions written to disk (positions that did not move forward are not written)."),
		flushErrors: counter("herald_store_flush_errors_total",
			"Failed ACK commits (the positions are kept and retried)."),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_store_flush_duration_seconds",
			Help:    "Time to read, merge and commit one pending set of ACK positions.",
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 14), // 100µs .. 0.8s
		}),
		unflushed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_store_unflushed_positions",
			Help: "Stored ACK positions not yet flushed to Redis.",
		}),
		pending: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_store_pending_positions",
			Help: "ACK positions accepted but not yet committed to disk.",
		}, pendingLen),
	}
}

// Collectors returns the store's Prometheus collectors for the caller to
// register.
func (s *Store) Collectors() []prometheus.Collector {
	m := s.m
	return []prometheus.Collector{
		m.ackWrites, m.ackCoalesced, m.ackBlocked,
		m.flushBatches, m.flushPositions, m.flushErrors, m.flushDuration,
		m.unflushed, m.pending,
	}
}

func (s *Store) pendingLen() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.pending.n + s.inflight.n)
}
