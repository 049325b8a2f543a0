package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

const (
	// minRate and minClients are the floor every scenario must reach.
	minRate    = 500
	minClients = 200
	// quiesceTimeout bounds the wait for every device to have everything.
	quiesceTimeout = 60 * time.Second
	// summaryEnv names a file every scenario appends its summary line to.
	summaryEnv = "HERALD_E2E_SUMMARY"
)

// scenario is one end-to-end run: a cluster, a fleet, paced traffic, and a
// fault or bad input injected beside it. Zero values are the defaults.
type scenario struct {
	name    string
	cluster clusterConfig
	fleet   fleetConfig
	rate    int           // events per second; 0 means 520 (so that the measured rate stays above minRate)
	traffic time.Duration // publishing time; 0 means 12s
	mix     mixFunc       // nil means defaultMix
	// setup runs after the fleet is built and before it connects: extra
	// clients, extra processes.
	setup func(r *run)
	// fault runs on the test goroutine while the publisher runs; it
	// paces itself with r.at and returns when it is done.
	fault func(r *run)
	// verify runs after the accounting, for the scenario's own outcomes.
	verify func(r *run, res *result)
	// undisturbed says the fault must not touch the fleet at all: every
	// client keeps its first connection and gets no error frame.
	undisturbed bool
}

// run is a scenario in progress.
type run struct {
	t     *testing.T
	c     *cluster
	f     *fleet
	led   *ledger
	pub   *publisher
	start time.Time // when publishing began
}

// at waits until d after publishing began (pacing a fault).
func (r *run) at(d time.Duration) {
	if w := time.Until(r.start.Add(d)); w > 0 {
		time.Sleep(w)
	}
}

func (s scenario) run(t *testing.T) *result {
	t.Helper()
	rate := or(s.rate, 520)
	traffic := s.traffic
	if traffic == 0 {
		traffic = 12 * time.Second
	}
	mix := s.mix
	if mix == nil {
		mix = defaultMix
	}
	c := startCluster(t, s.cluster)
	f := newFleet(t, c, s.fleet)
	led := &ledger{}
	r := &run{t: t, c: c, f: f, led: led}
	if s.setup != nil {
		s.setup(r)
	}
	f.start()
	r.pub = newPublisher(c, f, led, mix)
	t.Cleanup(r.pub.close)
	r.start = time.Now()
	var perr error
	published := make(chan struct{})
	go func() {
		defer close(published)
		perr = r.pub.run(rate, traffic)
	}()
	t.Cleanup(func() { r.pub.stop(); <-published })
	if s.fault != nil {
		s.fault(r)
	}
	<-published
	if perr != nil {
		t.Errorf("publisher: %v", perr)
	}
	done := time.Now()
	quietAt, quiet := waitUntil(quiesceTimeout, func() bool { return f.caughtUp(led) })
	f.stop()
	res := led.check(f)
	res.name, res.rate = s.name, float64(res.published)/max(r.pub.duration.Seconds(), traffic.Seconds())
	res.quiescence = quietAt.Sub(done)
	t.Log(res.summary())
	saveSummary(t, res)
	if p := res.problems(); len(p) > 0 {
		t.Errorf("%s broke the delivery contract: %s\n  %s", s.name, strings.Join(p, ", "), strings.Join(res.samples, "\n  "))
	}
	if !quiet {
		t.Errorf("not every device had everything %v after the last publish: %s\n%s",
			quiesceTimeout, strings.Join(f.behind(led), "; "), r.c.diagnose())
	}
	if term := terminalClients(f); len(term) > 0 {
		t.Errorf("clients refused for good: %s", strings.Join(term, "; "))
	}
	if res.published < int(float64(rate)*traffic.Seconds()) || res.clients < minClients {
		t.Errorf("load below the floor: %d events, %d clients", res.published, res.clients)
	}
	if s.undisturbed {
		if d := f.disturbed(); len(d) > 0 {
			t.Errorf("the fleet was disturbed: %s", strings.Join(d, "; "))
		}
	}
	if s.verify != nil {
		s.verify(r, res)
	}
	return res
}

// saveSummary appends the summary line to the file named by summaryEnv,
// for docs/reliability.md.
func saveSummary(t *testing.T, res *result) {
	path := os.Getenv(summaryEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Logf("summary file: %v", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", t.Name(), res.summary())
}

// waitUntil polls cond every 10ms until it holds or timeout passes, and
// returns when it first held.
func waitUntil(timeout time.Duration, cond func() bool) (time.Time, bool) {
	end := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now(), true
		}
		if time.Now().After(end) {
			return time.Now(), false
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
}
