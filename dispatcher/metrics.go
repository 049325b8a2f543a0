package dispatcher

import "github.com/prometheus/client_golang/prometheus"

// Results of one ingest event, the result label of events_total.
const (
	resultDelivered = "delivered" // appended to at least one feed
	resultDuplicate = "duplicate" // every feed already had it
	resultDLQ       = "dlq"       // dead-lettered
)

// Reasons of a dead letter, the reason label of dlq_total.
const (
	reasonMalformed  = "malformed"  // broke the ingest contract
	reasonDeliveries = "deliveries" // failed MaxDeliveries times
)

// metrics are the Dispatcher's collectors; cmd/herald registers them.
type metrics struct {
	events      *prometheus.CounterVec
	appends     *prometheus.CounterVec
	batch       prometheus.Histogram
	lag         *prometheus.GaugeVec
	pending     *prometheus.GaugeVec
	dlq         *prometheus.CounterVec
	reclaimed   prometheus.Counter
	leases      prometheus.Gauge
	errors      *prometheus.CounterVec
	lateEntries prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dispatcher_events_total",
			Help: "Ingest events handled, by result: delivered (appended to at least one feed), duplicate, dlq.",
		}, []string{"result"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dispatcher_feed_appends_total",
			Help: "Feed appends, by result: appended or duplicate (idempotency key or redelivered source entry).",
		}, []string{"result"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_dispatcher_batch_duration_seconds",
			Help:    "Time to append, dead-letter and acknowledge one batch of ingest entries.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_dispatcher_group_lag",
			Help: "Entries of an ingest stream not yet read by the group (XINFO GROUPS lag); -1 when Redis cannot tell, which happens when an unread entry was deleted.",
		}, []string{"stream"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_dispatcher_pending",
			Help: "Entries of an ingest stream read but not yet acknowledged by the group.",
		}, []string{"stream"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dispatcher_dlq_total",
			Help: "Entries sent to the dead-letter stream, by reason: malformed or deliveries.",
		}, []string{"reason"}),
		reclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_dispatcher_reclaimed_total",
			Help: "Pending entries claimed from other consumers (at lease takeover and by the periodic claim).",
		}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_dispatcher_leases_held",
			Help: "Ingest streams this dispatcher holds the lease of.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dispatcher_errors_total",
			Help: "Failed Redis operations, by op: read (new or pending entries), append (the whole batch: appends, dead letters, acknowledgement), lease, heartbeat, claim (a takeover's claim of the pending entries, and the periodic claim of entries left idle), housekeeping, ack (entries held back from earlier batches, acknowledged at a recovery or when a worker stops).",
		}, []string{"op"}),
		lateEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_dispatcher_late_entries_total",
			Help: "Entries claimed after newer ones of their stream were handled; appended out of order rather than dropped.",
		}),
	}
	for _, r := range []string{resultDelivered, resultDuplicate, resultDLQ} {
		m.events.WithLabelValues(r)
	}
	m.appends.WithLabelValues("appended")
	m.appends.WithLabelValues("duplicate")
	m.dlq.WithLabelValues(reasonMalformed)
	m.dlq.WithLabelValues(reasonDeliveries)
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.events, m.appends, m.batch, m.lag, m.pending, m.dlq, m.reclaimed, m.leases, m.errors, m.lateEntries,
	}
}
