package wsedge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus collectors; cmd/herald registers them.
type metrics struct {
	connects       *prometheus.CounterVec
	byWire         *prometheus.GaugeVec   // live sessions by protocol and compression
	wireBytes      *prometheus.CounterVec // bytes of data frames written, by protocol and compression
	closes         *prometheus.CounterVec
	connectSeconds prometheus.Histogram
	frames         prometheus.Counter
	flushFrames    prometheus.Histogram
	pushed         prometheus.Counter
	replayed       prometheus.Counter
	filled         prometheus.Counter
	gaps           prometheus.Counter
	resets         prometheus.Counter
	slow           prometheus.Counter
	acks           prometheus.Counter
	acksFlushed    prometheus.Counter
	ackFlushErrors prometheus.Counter
	upstream       prometheus.Counter
	ruleSkipped    prometheus.Counter
	ruleHeld       prometheus.Counter
	rulePubDenied  prometheus.Counter
	ruleConnDenied prometheus.Counter
	pubsubErrors   prometheus.Counter
	resubscribes   prometheus.Counter
	deadEdges      prometheus.Counter
	replacedRemote prometheus.Counter
	unreadFrames   prometheus.Counter
	audit          *prometheus.CounterVec
	pruned         prometheus.Counter

	presenceRemoved, presenceRemoveErrors  prometheus.Counter
	onlineRepairAdded, onlineRepairRemoved prometheus.Counter
	sessions                               prometheus.Collector

	// Client limits (clientlimits.go).
	limited            [numLimits]prometheus.Counter // sessions closed with 4029, per token bucket
	limitSubs          prometheus.Counter
	devicesEvicted     prometheus.Counter
	positionsForgotten prometheus.Counter
	upstreamTrimmed    prometheus.Counter
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_edge_" + name, Help: help})
	}
	return &metrics{
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_edge_connects_total",
			Help: "WebSocket connection attempts by result (ok, or the close code that refused it)."}, []string{"result"}),
		byWire: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "herald_edge_sessions_by_wire",
			Help: "Live sessions by protocol (1: JSON text frames, 2: MessagePack binary frames) and compression (none, deflate)."}, []string{"protocol", "compression"}),
		wireBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_edge_written_bytes_total",
			Help: "Bytes of data frames the edge wrote to clients (frame headers included, deflated when compression is on), by protocol and compression."}, []string{"protocol", "compression"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_edge_closes_total",
			Help: "Sessions closed by the server, by close code."}, []string{"code"}),
		connectSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_edge_connect_seconds",
			Help: "Time from upgrade request to a session following its feeds.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		frames: c("client_frames_total", "Frames received from clients."),
		flushFrames: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_edge_flush_frames",
			Help: "Frames written to one session per flush (several are sent in one write).", Buckets: []float64{1, 2, 4, 8, 16, 64, 256, 1024}}),
		pushed:               c("frames_pushed_total", "Frames written to clients."),
		replayed:             c("replayed_total", "Feed entries read from Redis to catch sessions up."),
		filled:               c("gap_filled_total", "Feed entries fetched by the hub to fill gaps."),
		gaps:                 c("gaps_total", "Gaps in a feed's seq noticed by the hub."),
		resets:               c("resets_total", "Reset frames sent (history lost or trimmed)."),
		slow:                 c("slow_consumers_total", "Sessions closed with 4008 because their send queue overflowed."),
		acks:                 c("acks_total", "ACKs that moved a device's position."),
		acksFlushed:          c("acks_flushed_total", "ACK positions copied to Redis."),
		ackFlushErrors:       c("ack_flush_errors_total", "Failed copies of ACK positions to Redis (retried)."),
		upstream:             c("upstream_total", "Client pub frames appended to the upstream stream."),
		ruleSkipped:          c("rule_skipped_total", "Notifications a rate rule kept from being pushed: drop, or held past max_wait (still in the feed)."),
		ruleHeld:             c("rule_held_total", "Times a rate rule held a notification to push it later."),
		rulePubDenied:        c("rule_pub_denied_total", "Client pub frames refused by a rate rule."),
		ruleConnDenied:       c("rule_connect_denied_total", "Connections refused by a per-tenant rate rule."),
		pubsubErrors:         c("pubsub_errors_total", "Redis Pub/Sub receive errors and lost cluster shard connections (each followed by a reconnect, or a move of its channels)."),
		resubscribes:         c("resubscribes_total", "Feed channels resubscribed after a reconnect (each is filled from the stream)."),
		deadEdges:            c("dead_edges_cleaned_total", "Dead edges whose presence this edge removed."),
		replacedRemote:       c("sessions_replaced_remotely_total", "Sessions closed because their device connected again to another edge."),
		unreadFrames:         c("unread_frames_total", "Unread frames sent after a user's inbox read state changed."),
		presenceRemoved:      c("presence_removed_total", "Presence entries of ended sessions removed from Redis (in batches)."),
		presenceRemoveErrors: c("presence_remove_errors_total", "Presence entries of ended sessions that could not be removed (the device's next connect replaces them; a dead edge's are cleaned by the others)."),
		onlineRepairAdded:    c("online_repair_added_total", "Users with a live session here that the online repair added back to their tenant's online set."),
		onlineRepairRemoved:  c("online_repair_removed_total", "Users with no device online that the online repair took out of their tenant's online set."),
		pruned:               c("closed_sessions_pruned_total", "Closed-session records deleted from the store after the retention."),
		audit: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_edge_audit_total",
			Help: "Audit events (refused connections, limit hits) by reason, logged or suppressed by the log's rate limit."}, []string{"reason"}),
		limited: [numLimits]prometheus.Counter{
			limitFrames:   c("limit_frames_total", "Sessions closed with 4029 for sending more client frames per second than allowed."),
			limitBytes:    c("limit_bytes_total", "Sessions closed with 4029 for sending more client frame bytes per second than allowed."),
			limitPubs:     c("limit_pubs_total", "Sessions closed with 4029 for sending more pub frames per second than allowed."),
			limitPubBytes: c("limit_pub_bytes_total", "Sessions closed with 4029 for sending more pub frame bytes per second than allowed."),
		},
		limitSubs:          c("limit_subscriptions_total", "Sub frames refused (too_many_subscriptions): the session had the most topics allowed."),
		devicesEvicted:     c("devices_evicted_total", "Devices whose ACK positions were deleted because their user had more devices than allowed."),
		positionsForgotten: c("positions_forgotten_total", "Topic ACK positions deleted on unsub."),
		upstreamTrimmed:    c("upstream_trimmed_total", "Upstream stream entries trimmed for age (MINID)."),
	}
}

func (m *metrics) sessionsFn(f func() float64) {
	m.sessions = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_edge_sessions",
		Help: "Live WebSocket sessions."}, f)
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.connects, m.byWire, m.wireBytes, m.closes, m.connectSeconds, m.frames, m.flushFrames, m.pushed, m.replayed,
		m.filled, m.gaps, m.resets, m.slow, m.acks, m.acksFlushed, m.ackFlushErrors, m.upstream,
		m.ruleSkipped, m.ruleHeld, m.rulePubDenied, m.ruleConnDenied, m.pubsubErrors, m.resubscribes, m.deadEdges, m.replacedRemote, m.unreadFrames, m.audit, m.pruned, m.presenceRemoved, m.onlineRepairAdded, m.onlineRepairRemoved, m.presenceRemoveErrors, m.sessions,
		m.limited[limitFrames], m.limited[limitBytes], m.limited[limitPubs], m.limited[limitPubBytes],
		m.limitSubs, m.devicesEvicted, m.positionsForgotten, m.upstreamTrimmed}
}
