package ratelimit

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the rate rules' Prometheus collectors. One Metrics is shared
// by the Limiter and whatever feeds it rules (Watcher or FileWatcher);
// cmd/herald registers Collectors(). The per-rule series carry the label
// rule (the rule's name); a rule's series are removed when it leaves the
// rule set.
type Metrics struct {
	passed       *prometheus.CounterVec
	limited      *prometheus.CounterVec
	queued       *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	shadow       *prometheus.CounterVec
	version      prometheus.Gauge
	reloadErrors prometheus.Counter
	// flush, set by the Limiter, adds the passes it holds back to passed;
	// collecting passed calls it first.
	flush atomic.Pointer[func()]
}

// NewMetrics returns unregistered collectors.
func NewMetrics() *Metrics {
	vec := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_ratelimit_" + name + "_total", Help: help}, []string{"rule"})
	}
	return &Metrics{
		passed: vec("passed", "Checks a rule let through (enforced rules: the check passed every rule; shadow rules: the rule would not have limited)."),
		limited: vec("limited", "Checks an enforced rule limited: pushes held or dropped, pub frames and connections refused. "+
			"A held notification asked about again counts again."),
		queued:  vec("queued", "Push checks an enforced rule with action queue held back (each retry of a held notification counts)."),
		dropped: vec("dropped", "Push checks an enforced rule with action drop kept from being pushed, plus pub frames and connections refused."),
		shadow:  vec("shadow_would_limit", "Checks a shadow rule would have limited (nothing was blocked)."),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_ratelimit_rules_version",
			Help: "Version of the rules document in force (the Store's version; for a rules file, reloads since start)."}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_ratelimit_rules_reload_errors_total",
			Help: "Rules documents that could not be loaded or were invalid; the rules in force stayed."}),
	}
}

// Collectors returns every collector, for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{flushing{m}, m.limited, m.queued, m.dropped, m.shadow, m.version, m.reloadErrors}
}

// flushing is the passed counters, brought up to date when collected.
type flushing struct{ m *Metrics }

func (f flushing) Describe(ch chan<- *prometheus.Desc) { f.m.passed.Describe(ch) }

func (f flushing) Collect(ch chan<- prometheus.Metric) {
	if flush := f.m.flush.Load(); flush != nil {
		(*flush)()
	}
	f.m.passed.Collect(ch)
}

// ruleCounters are one rule's series, looked up once per Apply so that a
// check only increments.
type ruleCounters struct {
	passed, limited, queued, dropped, shadow prometheus.Counter
}

func (m *Metrics) forRule(name string) ruleCounters {
	return ruleCounters{
		passed:  m.passed.WithLabelValues(name),
		limited: m.limited.WithLabelValues(name),
		queued:  m.queued.WithLabelValues(name),
		dropped: m.dropped.WithLabelValues(name),
		shadow:  m.shadow.WithLabelValues(name),
	}
}

func (m *Metrics) forget(name string) {
	for _, v := range []*prometheus.CounterVec{m.passed, m.limited, m.queued, m.dropped, m.shadow} {
		v.DeleteLabelValues(name)
	}
}
