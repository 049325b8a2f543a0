package ratelimit

import (
	"testing"
	"time"

	"github.com/alibaba/sentinel-golang/util"
)

// Sentinel's clock is the coarse one while a Limiter or a Breaker is
// open, keeps up with the real time, and is the real one again after the
// last Close.
func TestCoarseClockFollowsOpenComponents(t *testing.T) {
	if _, ok := util.CurrentClock().(*util.RealClock); !ok {
		t.Fatalf("before: clock %T, want the real one", util.CurrentClock())
	}
	l := newLimiter(t, "")
	b, err := NewBreaker(BreakerConfig{Logger: testLogger(t), Backend: "clock-test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := util.CurrentClock().(*coarseClock); !ok {
		t.Fatalf("open: clock %T, want the coarse one", util.CurrentClock())
	}
	start := util.CurrentTimeMillis()
	for deadline := time.Now().Add(5 * time.Second); util.CurrentTimeMillis() < start+20; {
		if time.Now().After(deadline) {
			t.Fatalf("the coarse clock did not move 20ms in 5s: %d, then %d", start, util.CurrentTimeMillis())
		}
		time.Sleep(time.Millisecond) // polling, not synchronisation
	}
	if lag := time.Now().UnixMilli() - int64(util.CurrentTimeMillis()); lag < 0 || lag > 1000 {
		t.Fatalf("coarse clock %dms behind the real one", lag)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := util.CurrentClock().(*coarseClock); !ok {
		t.Fatal("the Breaker is still open: the clock must stay coarse")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := util.CurrentClock().(*util.RealClock); !ok {
		t.Fatalf("after the last Close: clock %T, want the real one", util.CurrentClock())
	}
}
