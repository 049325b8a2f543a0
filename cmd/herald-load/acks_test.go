package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestParseAckMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want ackMode
	}{
		{"each", ackMode{kind: ackEach}},
		{"none", ackMode{kind: ackNone}},
		{"batched:1s", ackMode{kind: ackBatched, every: time.Second}},
		{"batched:250ms", ackMode{kind: ackBatched, every: 250 * time.Millisecond}},
	} {
		got, err := parseAckMode(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("%q prints as %q", tt.in, got.String())
		}
	}
	for _, bad := range []string{"", "Each", "batched", "batched:", "batched:0s", "batched:-1s", "batched:1us", "batched:soon", "always"} {
		if _, err := parseAckMode(bad); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", bad, err)
		}
	}
}

// TestAckModesAgainstAnEdge publishes 20 personal events to each of 10
// clients on a real edge and counts the ack frames the clients sent and
// the acks that moved a device's position on the edge
// (herald_edge_acks_total): one per notification with each (sent at
// once, so every one moves the position), fewer with batched, none with
// none.
func TestAckModesAgainstAnEdge(t *testing.T) {
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	edgeAcks := func() float64 {
		m, err := scrape(context.Background(), d.metrics, []string{"herald_edge_acks_total"})
		if err != nil {
			t.Fatal(err)
		}
		return m["herald_edge_acks_total"]
	}
	for _, tt := range []struct {
		acks     string
		min, max int64 // ack frames sent, of 200 notifications
	}{
		{"each", 200, 200},
		{"batched:100ms", 10, 150}, // every client at most about every 100 ms over the 400 ms
		{"batched:1h", 0, 0},
		{"none", 0, 0},
	} {
		t.Run(tt.acks, func(t *testing.T) {
			before := edgeAcks()
			r, out := runJSON(t, append(commonArgs(d, "10"), "--scenarios", "personal", "--tenant", "acks"+tt.acks[:4],
				"--acks", tt.acks, "--rates", "500", "--duration", "400ms", "--batch", "1")...)
			p := phaseNamed(t, r, "personal 500/s").Personal
			if p.Delivered != 200 || p.Lost != 0 || p.Acks < tt.min || p.Acks > tt.max {
				t.Fatalf("delivered %d, lost %d, ack frames %d; want %d to %d\n%s", p.Delivered, p.Lost, p.Acks, tt.min, tt.max, out)
			}
			if tt.acks != "each" {
				return
			}
			deadline := time.Now().Add(5 * time.Second)
			for edgeAcks()-before < 200 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if got := edgeAcks() - before; got != 200 {
				t.Fatalf("the edge counted %v acks that moved a position, want 200 (one per notification)", got)
			}
		})
	}
}
