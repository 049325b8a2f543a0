package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/util"
)

// Sentinel reads the time in milliseconds many times per check (the slot
// chain, every hotspot rule, the statistics), each a time.Now of about
// 50ns. While a Limiter or Breaker is open, Sentinel's clock is a coarse
// one instead: one goroutine stores the time every millisecond and a read
// is an atomic load. It is the same idea as Sentinel's UseCacheTime, but
// owned: it starts with the first open Limiter or Breaker and stops (and
// the real clock is back) when the last one closes. The time Sentinel sees
// lags by up to a millisecond (more if the goroutine waits for a CPU),
// which delays refills and breaker retries by as much.

// clockTick is how often the coarse clock is updated.
const clockTick = time.Millisecond

// coarseClock implements Sentinel's util.Clock.
type coarseClock struct {
	ms atomic.Uint64 // unix milliseconds
}

func (c *coarseClock) Now() time.Time            { return time.Now() }
func (c *coarseClock) Sleep(d time.Duration)     { time.Sleep(d) }
func (c *coarseClock) CurrentTimeMillis() uint64 { return c.ms.Load() }
func (c *coarseClock) CurrentTimeNano() uint64   { return uint64(time.Now().UnixNano()) }

func (c *coarseClock) set(t time.Time) { c.ms.Store(uint64(t.UnixMilli())) }

var clockState struct {
	mu    sync.Mutex
	users int
	stop  chan struct{}
	done  chan struct{}
}

// acquireClock starts the coarse clock for one more user.
func acquireClock() {
	s := &clockState
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users++
	if s.users > 1 {
		return
	}
	c := &coarseClock{}
	c.set(time.Now())
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go c.run(s.stop, s.done)
	util.SetClock(c)
}

// releaseClock drops one user; the last one stops the goroutine and
// gives Sentinel its real clock back.
func releaseClock() {
	s := &clockState
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users == 0 {
		return
	}
	s.users--
	if s.users > 0 {
		return
	}
	util.SetClock(util.NewRealClock())
	close(s.stop)
	<-s.done
}

func (c *coarseClock) run(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			// Never back: a wall clock stepped back waits here instead.
			if ms := uint64(time.Now().UnixMilli()); ms > c.ms.Load() {
				c.ms.Store(ms)
			}
		}
	}
}
