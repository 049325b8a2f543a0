package ratelimit

import (
	"fmt"
	"strings"
	"sync"

	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel's list of state listeners is global and not safe to change
// while calls run, so one listener is registered, once, and it routes each
// transition to the Breaker that owns the resource.

var (
	listenerOnce sync.Once
	breakersMu   sync.RWMutex
	breakers     = map[string]*Breaker{} // backend → open Breaker
)

func registerBreaker(b *Breaker) error {
	listenerOnce.Do(func() { circuitbreaker.RegisterStateChangeListeners(stateListener{}) })
	breakersMu.Lock()
	defer breakersMu.Unlock()
	if _, taken := breakers[b.cfg.Backend]; taken {
		return fmt.Errorf("a Breaker for backend %q is already open", b.cfg.Backend)
	}
	breakers[b.cfg.Backend] = b
	return nil
}

func unregisterBreaker(b *Breaker) {
	breakersMu.Lock()
	defer breakersMu.Unlock()
	if breakers[b.cfg.Backend] == b {
		delete(breakers, b.cfg.Backend)
	}
}

// stateListener runs synchronously on the calling goroutine: it only
// updates state, a gauge and a buffered channel.
type stateListener struct{}

func (stateListener) route(r circuitbreaker.Rule, to State) {
	rest, ok := strings.CutPrefix(r.Resource, "herald.breaker.")
	if !ok {
		return
	}
	backend, _, _ := strings.Cut(rest, ":")
	breakersMu.RLock()
	b := breakers[backend]
	breakersMu.RUnlock()
	if b != nil {
		b.transition(r.Resource, r.Id, to)
	}
}

func (l stateListener) OnTransformToClosed(_ circuitbreaker.State, r circuitbreaker.Rule) {
	l.route(r, Closed)
}

func (l stateListener) OnTransformToOpen(_ circuitbreaker.State, r circuitbreaker.Rule, _ any) {
	l.route(r, Open)
}

func (l stateListener) OnTransformToHalfOpen(_ circuitbreaker.State, r circuitbreaker.Rule) {
	l.route(r, HalfOpen)
}

// breakerMetrics are a Breaker's collectors; the label breaker is its
// backend.
type breakerMetrics struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	rejected    *prometheus.CounterVec
}

func newBreakerMetrics(backend string) breakerMetrics {
	cl := prometheus.Labels{"breaker": backend}
	return breakerMetrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "herald_breaker_state", ConstLabels: cl,
			Help: "Circuit breaker state per call name: 0 closed, 1 open, 2 half-open."}, []string{"name"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_breaker_transitions_total", ConstLabels: cl,
			Help: "Circuit breaker transitions per call name, by the state entered."}, []string{"name", "to"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_breaker_rejected_total", ConstLabels: cl,
			Help: "Calls refused at once because the breaker was open."}, []string{"name"}),
	}
}
