package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/config"
)

// Sentinel is configured once per process, never with api.InitDefault
// (which starts five goroutines and writes $HOME/logs/csp/*): no metric log
// files, no system statistics collectors, no cached-time ticker of its own
// (the Limiter and Breaker bring a stoppable one, clock.go), no exporter
// listener, and a logger that forwards to slog. Its log level is
// shifted down one step (Sentinel logs every rule load at INFO).

var (
	sentinelOnce sync.Once
	sentinelErr  error
	// sentinelLog is where Sentinel's logging goes; the Limiter or Breaker
	// created last sets it.
	sentinelLog atomic.Pointer[slog.Logger]
)

// initSentinel configures Sentinel the first time it is called and points
// its log at log.
func initSentinel(log *slog.Logger) error {
	sentinelLog.Store(log.With("component", "sentinel"))
	sentinelOnce.Do(func() {
		c := config.NewDefaultConfig()
		c.Sentinel.App.Name = "herald"
		c.Sentinel.Log.Logger = slogAdapter{}
		c.Sentinel.Log.Dir = "" // never used: a Logger is set
		c.Sentinel.Log.Metric.FlushIntervalSec = 0
		c.Sentinel.Stat.System.CollectIntervalMs = 0
		c.Sentinel.Stat.System.CollectLoadIntervalMs = 0
		c.Sentinel.Stat.System.CollectCpuIntervalMs = 0
		c.Sentinel.Stat.System.CollectMemoryIntervalMs = 0
		c.Sentinel.UseCacheTime = false
		c.Sentinel.Exporter.Metric.HttpAddr = ""
		if err := api.InitWithConfig(c); err != nil {
			sentinelErr = fmt.Errorf("init sentinel: %w", err)
		}
	})
	return sentinelErr
}

// slogAdapter implements Sentinel's logging.Logger on top of sentinelLog.
// Sentinel's Info becomes Debug, its Warn and Error stay.
type slogAdapter struct{}

func (slogAdapter) log(level slog.Level, msg string, kv []any) {
	l := sentinelLog.Load()
	if l == nil || !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, msg, kv...)
}

func (slogAdapter) enabled(level slog.Level) bool {
	l := sentinelLog.Load()
	return l != nil && l.Enabled(context.Background(), level)
}

func (a slogAdapter) Debug(msg string, kv ...any) { a.log(slog.LevelDebug-4, msg, kv) }
func (a slogAdapter) DebugEnabled() bool          { return a.enabled(slog.LevelDebug - 4) }
func (a slogAdapter) Info(msg string, kv ...any)  { a.log(slog.LevelDebug, msg, kv) }
func (a slogAdapter) InfoEnabled() bool           { return a.enabled(slog.LevelDebug) }
func (a slogAdapter) Warn(msg string, kv ...any)  { a.log(slog.LevelWarn, msg, kv) }
func (a slogAdapter) WarnEnabled() bool           { return a.enabled(slog.LevelWarn) }
func (a slogAdapter) Error(err error, msg string, kv ...any) {
	a.log(slog.LevelError, msg, append(kv, "err", err))
}
func (a slogAdapter) ErrorEnabled() bool { return a.enabled(slog.LevelError) }
