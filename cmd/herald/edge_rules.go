package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// ruleFlags are the edge's rate-rule and breaker settings.
type ruleFlags struct {
	file       string
	adminToken string // --admin-token, registered with the admin listener's flags
	noBreaker  bool
}

func (f *flags) rules(o *ruleFlags) {
	f.String(&o.file, "rules", "", "rate rules YAML file, watched for changes (single node); empty: rules come from Redis (herald rules apply)")
	f.Bool(&o.noBreaker, "no-breaker", false, "call Redis without the circuit breaker")
}

// edgeRules is what the edge needs from package ratelimit.
type edgeRules struct {
	limiter *ratelimit.Limiter
	breaker *ratelimit.Breaker
	admin   http.Handler // nil: no admin API
	watch   func(ctx context.Context) error
}

// newEdgeRules opens the process's Limiter, loads the rules in force (a bad
// rules file stops the start with its line and field), and builds the
// watcher that keeps them current and the Redis breaker.
func newEdgeRules(rdb redis.UniversalClient, space keys.Space, o ruleFlags, log *slog.Logger) (*edgeRules, error) {
	m := ratelimit.NewMetrics()
	lim, err := ratelimit.New(ratelimit.Config{Logger: log.With("component", "ratelimit"), Metrics: m})
	if err != nil {
		return nil, err
	}
	r := &edgeRules{limiter: lim}
	if o.file != "" {
		fw := ratelimit.NewFileWatcher(o.file, lim.Apply, ratelimit.FileConfig{Logger: log, Metrics: m})
		if err := fw.Load(); err != nil {
			lim.Close()
			return nil, fmt.Errorf("rules file %s: %w", o.file, err)
		}
		r.watch = fw.Run
	} else {
		st := ratelimit.NewStore(rdb, space)
		r.watch = ratelimit.NewWatcher(st, lim.Apply, ratelimit.WatcherConfig{Logger: log, Metrics: m}).Run
		if o.adminToken != "" {
			r.admin = ratelimit.AdminHandler(st, o.adminToken)
		}
	}
	if !o.noBreaker {
		if r.breaker, err = ratelimit.NewBreaker(ratelimit.BreakerConfig{Logger: log.With("component", "breaker")}); err != nil {
			lim.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *edgeRules) collectors() []prometheus.Collector {
	cs := r.limiter.Metrics().Collectors()
	if r.breaker != nil {
		cs = append(cs, r.breaker.Collectors()...)
	}
	return cs
}

func (r *edgeRules) close() {
	if r.breaker != nil {
		r.breaker.Close()
	}
	r.limiter.Close()
}
