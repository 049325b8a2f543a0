package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestJudgeSoak(t *testing.T) {
	lim := soakLimits{FDFraction: 0.01, FDSlack: 8, RSSGrowth: 0.10}
	base := soakSample{FDs: 1000, Sessions: 0, RSSMB: 30}
	good := func(cycle int, fds, rss float64) soakSample {
		return soakSample{Cycle: cycle, Clients: 100, Connected: 100, Received: 100, Settled: true, FDs: fds, LoadedRSSMB: rss, RSSMB: rss / 2}
	}
	last := good(4, 1000, 60)
	tests := []struct {
		name   string
		cycles []soakSample
		last   soakSample
		want   []string // in the reasons, in order; none: OK
	}{
		{"steady", []soakSample{good(1, 1004, 50), good(2, 1010, 60), good(3, 998, 62)}, last, nil},
		{"descriptors within 1% of a large baseline", []soakSample{good(1, 1010, 50)}, last, nil},
		{"descriptors leak", []soakSample{good(1, 1100, 50), good(2, 1200, 50)}, last,
			[]string{"cycle 1: 1100 descriptors open, baseline 1000 (at most 1010)", "cycle 2: 1200 descriptors"}},
		{"RSS of the warm-up cycle is not judged", []soakSample{good(1, 1000, 50), good(2, 1000, 80)}, last, nil},
		{"RSS grows after the warm-up", []soakSample{good(1, 1000, 50), good(2, 1000, 60), good(3, 1000, 67)}, last,
			[]string{"cycle 3: RSS with the clients connected 67.0 MB, 12% more than cycle 2's 60.0 MB"}},
		{"RSS after the clients left is reported, not judged", []soakSample{good(1, 1000, 50), good(2, 1000, 60),
			{Cycle: 3, Clients: 100, Connected: 100, Received: 100, Settled: true, FDs: 1000, LoadedRSSMB: 61, RSSMB: 60}}, last, nil},
		{"sessions do not return", []soakSample{{Cycle: 1, Clients: 100, Connected: 100, Received: 100, FDs: 1000, Sessions: 40, SettleS: 120}}, last,
			[]string{"cycle 1: 40 sessions still open after 120s"}},
		{"a cycle that could not connect", []soakSample{{Cycle: 1, Clients: 100, Connected: 60, Received: 60, Settled: true, FDs: 1000}}, last,
			[]string{"cycle 1: 60 of 100 clients connected", "cycle 1: 60 of 100 clients received"}},
		{"last wave short", []soakSample{good(1, 1000, 50)}, soakSample{Clients: 100, Connected: 100, Received: 99},
			[]string{"last wave: 99 of 100 clients received"}},
		{"nothing ran", nil, last, []string{"no cycle ran"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judgeSoak(base, tt.cycles, tt.last, lim)
			if v.FDLimit != 1010 {
				t.Errorf("fd limit %v, want 1010", v.FDLimit)
			}
			if v.OK != (len(tt.want) == 0) || len(v.Reasons) != len(tt.want) {
				t.Fatalf("ok %v, reasons %q; want %q", v.OK, v.Reasons, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(v.Reasons[i], w) {
					t.Errorf("reason %d = %q, want it to start with %q", i, v.Reasons[i], w)
				}
			}
		})
	}
	// A small baseline: the slack, not 1%, bounds it.
	if v := judgeSoak(soakSample{FDs: 40}, []soakSample{good(1, 47, 50)}, last, lim); !v.OK || v.FDLimit != 48 {
		t.Fatalf("small baseline: %+v", v)
	}
}

// TestSoakSmall soaks a real edge with two cycles of 20 clients: each
// cycle's clients all connect and receive, half vanish with their killed
// worker and half by resetting their sockets, the edge's sessions come
// back to the baseline, and its descriptors with them.
func TestSoakSmall(t *testing.T) {
	verifyNoLeaks(t)
	useTestWorkers(t)
	d := startHerald(t)
	var out bytes.Buffer
	err := soak(t.Context(), []string{"--edges", d.ws, "--redis-url", d.redisURL, "--secret", testSecret, "--metrics", "edge=" + d.metrics,
		"--edge-data-dir", d.dataDir, "--cycles", "2", "--clients", "20", "--workers", "2", "--rate", "1000",
		"--connect-timeout", "20s", "--settle-timeout", "20s", "--timeout", "2m", "--fd-slack", "48"}, &out, &out)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var r soakReport
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &r); jerr != nil {
		t.Fatalf("no JSON line: %v\n%s", jerr, out.String())
	}
	if err != nil && !errors.Is(err, errNotOK) {
		t.Fatalf("soak: %v\n%s", err, out.String())
	}
	if len(r.Samples) != 2 || r.Baseline.FDs == 0 || r.Baseline.RSSMB == 0 || r.Baseline.StoreMB == 0 {
		t.Fatalf("samples %+v, baseline %+v\n%s", r.Samples, r.Baseline, out.String())
	}
	for _, s := range append(r.Samples, r.Last) {
		if s.Connected != 20 || s.Received != 20 || !s.Settled || s.Sessions != r.Baseline.Sessions {
			t.Errorf("cycle %d: %+v", s.Cycle, s)
		}
	}
	if s := r.Samples[0]; s.Killed != 10 || s.Reset != 10 {
		t.Errorf("cycle 1 vanished %d by kill and %d by reset, want 10 and 10", s.Killed, s.Reset)
	}
	for _, e := range r.Errors {
		if strings.Contains(e, "vanish") {
			t.Errorf("a client did not reset its socket: %s", e)
		}
	}
	if !r.Verdict.OK || err != nil {
		t.Fatalf("verdict %+v (%v): the edge kept what the vanished clients left?\n%s", r.Verdict, err, out.String())
	}
}
