package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/wsedge/auth"
)

// TestConnectionFlood floods a third edge, whose per-address connect rate
// is 10/s (bursts to 20; the default is 50/s, which a flood on a slow,
// busy machine may not outpace), with 400 connection attempts from
// 127.0.0.1 at once: most are refused with 4029, the edge
// stays up, and ten devices that connect to it from 127.0.0.2 are not
// affected and lose nothing, like the rest of the fleet on the other edges.
func TestConnectionFlood(t *testing.T) { connectionFlood().run(t) }

func connectionFlood() scenario {
	const floodRate = 10
	var limited *edge
	var local []*wsClient
	return scenario{
		name:        "connection-flood",
		undisturbed: true,
		setup: func(r *run) {
			limited = r.c.startEdge("e3", nil, []string{fmt.Sprintf("HERALD_CONNECT_RATE_PER_IP=%d", floodRate)})
			for i := range 10 {
				local = append(local, r.f.add(clientSpec{tenant: "acme", user: fmt.Sprintf("a-local%d", i), device: "phone",
					urls: []string{limited.url()}, localAddr: "127.0.0.2"}))
			}
		},
		fault: func(r *run) {
			r.at(3 * time.Second)
			start := time.Now()
			ok, refused, other := flood(r, limited, 400, 40)
			took := time.Since(start)
			r.t.Logf("flood of 400 connects from one address in %v: %d welcomed, %d refused with 4029, %d other", took, ok, refused, other)
			// The bucket lets through its burst and then floodRate/s for as
			// long as the flood lasts (longer on a busy machine), never more.
			allowed := 2*floodRate + int(floodRate*took.Seconds()) + 5
			if ok > allowed || refused == 0 || other > 0 {
				r.t.Errorf("flood: %d welcomed (at most %d in %v at %d/s, burst %d), %d refused with 4029, %d other outcomes; want some refused and no other",
					ok, allowed, took, floodRate, 2*floodRate, refused, other)
			}
			if v, err := metric(limited.admin, `herald_edge_connects_total{result="4029"}`); err != nil || int(v) < refused {
				r.t.Errorf("edge metric of 4029 refusals = %v, %v; want at least %d", v, err, refused)
			}
		},
		verify: func(r *run, res *result) {
			if limited.exited() {
				r.t.Errorf("the flooded edge exited: %v", limited.err)
			}
			for _, c := range local {
				if n := c.closeCount(4029); n > 0 || c.connects.Load() != 1 {
					r.t.Errorf("%s on the flooded edge from another address: %d refusals, %d welcomes; want 0 and 1", c.key(), n, c.connects.Load())
				}
			}
		},
	}
}

// flood makes n connection attempts from 127.0.0.1 with par at a time and
// counts those welcomed, those refused with 4029 and anything else.
func flood(r *run, e *edge, n, par int) (ok, refused, other int) {
	var okN, refusedN, otherN atomic.Int64
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				tok, _ := auth.Mint(secret, auth.Claims{Subject: fmt.Sprintf("a-flood%d", i), Tenant: "acme"}, time.Hour)
				p, err := dialProbe(context.Background(), e.url(), tok, nil, nil)
				if err != nil {
					otherN.Add(1)
					continue
				}
				f, err := p.next(10 * time.Second)
				p.close()
				switch {
				case err == nil && f.T == "welcome":
					okN.Add(1)
				case websocket.CloseStatus(err) == 4029:
					refusedN.Add(1)
				default:
					otherN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return int(okN.Load()), int(refusedN.Load()), int(otherN.Load())
}
