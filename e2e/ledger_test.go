package e2e

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// ledger records every event Redis stored and the devices it is meant for.
type ledger struct {
	mu      sync.Mutex
	targets [][]int32 // by event number - 1: the devices it is meant for
	specs   []spec
	expect  []int64 // by device: how many events it must end with
}

func (l *ledger) add(e int64, s spec, targets []int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(len(l.targets)) != e-1 {
		panic(fmt.Sprintf("ledger: event %d recorded after %d events", e, len(l.targets)))
	}
	l.targets = append(l.targets, targets)
	l.specs = append(l.specs, s)
	for _, d := range targets {
		for int(d) >= len(l.expect) {
			l.expect = append(l.expect, 0)
		}
		l.expect[d]++
	}
}

func (l *ledger) published() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.targets)
}

// expectedCounts returns how many events each of n devices must end with.
func (l *ledger) expectedCounts(n int) []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, n)
	copy(out, l.expect)
	return out
}

// result is the accounting of one scenario.
type result struct {
	name       string
	published  int
	rate       float64 // events/s over the publishing time
	clients    int
	deliveries int // (event, device) pairs meant
	lost       int // meant, never accepted
	dupWire    int // frames dropped by the clients' dedup
	dupAfter   int // one event accepted twice (under two seqs)
	outOfOrder int // accepted after an event published later, in the same feed
	unexpected int // accepted by a device it was not meant for
	conflicts  int // one (feed, epoch, seq) with two different events
	epochs     int // feed epoch changes (history lost)
	resets     int
	quiescence time.Duration // from the last publish until every device had everything
	samples    []string      // a few losses, for the report
}

func (r *result) summary() string {
	return fmt.Sprintf("%s: published=%d (%.0f/s) clients=%d deliveries=%d lost=%d dup-on-wire=%d out-of-order=%d quiescence=%v",
		r.name, r.published, r.rate, r.clients, r.deliveries, r.lost, r.dupWire, r.outOfOrder, r.quiescence.Round(time.Millisecond))
}

// problems lists every broken guarantee.
func (r *result) problems() []string {
	var p []string
	for _, c := range []struct {
		n    int
		what string
	}{
		{r.lost, "lost"}, {r.outOfOrder, "out of order"}, {r.dupAfter, "delivered twice under two seqs"},
		{r.unexpected, "delivered to a device it was not meant for"}, {r.conflicts, "seq conflicts"},
		{r.epochs, "epoch changes"}, {r.resets, "reset frames"},
	} {
		if c.n > 0 {
			p = append(p, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return p
}

// check compares what every device accepted with the ledger. Call it
// after the fleet stopped.
func (l *ledger) check(f *fleet) *result {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &result{published: len(l.targets), clients: len(f.clients)}
	meant := make([]map[int64]bool, len(f.clients))
	for i := range meant {
		meant[i] = make(map[int64]bool)
	}
	for i, ts := range l.targets {
		for _, d := range ts {
			meant[d][int64(i+1)] = true
		}
		r.deliveries += len(ts)
	}
	for i, c := range f.clients {
		c.mu.Lock()
		got := map[int64]int{}
		for name, fl := range c.feeds {
			for k, e := range fl.got {
				got[e]++
				if k > 0 && e < fl.got[k-1] {
					r.outOfOrder++
					r.sample(fmt.Sprintf("%s feed %s: event %d after %d", c.key(), name, e, fl.got[k-1]))
				}
			}
		}
		c.mu.Unlock()
		for e, n := range got {
			switch {
			case !meant[i][e]:
				r.unexpected += n
				r.sample(fmt.Sprintf("%s got event %d (%s), not meant for it", c.key(), e, l.describe(e)))
			case n > 1:
				r.dupAfter += n - 1
			}
		}
		for e := range meant[i] {
			if got[e] == 0 {
				r.lost++
				r.sample(fmt.Sprintf("%s never got event %d (%s)", c.key(), e, l.describe(e)))
			}
		}
		r.dupWire += int(c.dups.Load())
		r.conflicts += int(c.conflicts.Load())
		r.epochs += int(c.epochs.Load())
		r.resets += int(c.resets.Load())
	}
	return r
}

func (r *result) sample(s string) {
	if len(r.samples) < 10 {
		r.samples = append(r.samples, s)
	}
}

// describe names an event's audience for reports; callers hold l.mu.
func (l *ledger) describe(e int64) string {
	if e < 1 || int(e) > len(l.specs) {
		return "not published by the test"
	}
	s := l.specs[e-1]
	d := s.tenant + " to " + s.audience().String()
	if s.device != "" {
		d += " device " + s.device
	}
	return d
}

// terminalClients names the clients the server refused for good.
func terminalClients(f *fleet) []string {
	var out []string
	for _, c := range f.clients {
		if err := c.terminalErr(); err != nil {
			out = append(out, c.key()+": "+err.Error())
		}
	}
	slices.Sort(out)
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}
