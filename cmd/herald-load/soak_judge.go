package main

import (
	"fmt"
	"math"
)

// soakSample is the edge after one cycle of a soak (or at its baseline,
// cycle 0), and what the cycle's clients did.
type soakSample struct {
	Cycle      int     `json:"cycle"`
	Clients    int     `json:"clients"`
	Connected  int64   `json:"connected"` // clients that had their welcome
	Received   int64   `json:"received"`  // clients that had their notification
	Killed     int     `json:"killed"`    // clients whose worker was SIGKILLed
	Reset      int     `json:"reset"`     // clients that reset their socket (SO_LINGER 0)
	SettleS    float64 `json:"settle_s"`  // until the edge's sessions were back at the baseline
	Settled    bool    `json:"settled"`
	Sessions   float64 `json:"sessions"`
	FDs        float64 `json:"fds"`
	Goroutines float64 `json:"goroutines"`
	RSSMB      float64 `json:"rss_mb"`
	// LoadedRSSMB is the RSS with the wave's clients connected.
	LoadedRSSMB float64 `json:"loaded_rss_mb"`
	StoreMB     float64 `json:"store_mb"`
	ElapsedS    float64 `json:"elapsed_s"`
}

// soakLimits are what a soak is judged by.
type soakLimits struct {
	// FDFraction and FDSlack: after every cycle the edge's descriptors
	// must be back within FDFraction of the baseline, or FDSlack
	// descriptors, whichever is more: the baseline is a fresh edge, whose
	// Redis pools grow once to about 30 connections under load, and the
	// store's files come and go a little. A leak of one descriptor per
	// vanished client is thousands a cycle, and a small one adds up over
	// the cycles, since every cycle is held to the same baseline.
	FDFraction float64
	FDSlack    float64
	// RSSGrowth: from the second cycle on (the first warms up), RSS may
	// not grow by more than this fraction from one cycle to the next.
	RSSGrowth float64
}

// soakVerdict is a soak's judgement.
type soakVerdict struct {
	OK      bool     `json:"ok"`
	Reasons []string `json:"reasons,omitempty"`
	FDLimit float64  `json:"fd_limit"` // the most descriptors allowed after a cycle
}

// judgeSoak judges the cycles and the last wave against the baseline:
// the edge's descriptors back after every cycle, RSS not growing from
// cycle to cycle after the first, every client of every cycle connected
// and receiving (a leak shows up there too, once the descriptors run
// out), sessions back at the baseline, and the last wave fully connected
// and receiving. A pure function of the samples.
func judgeSoak(base soakSample, cycles []soakSample, last soakSample, lim soakLimits) soakVerdict {
	v := soakVerdict{FDLimit: base.FDs + math.Max(base.FDs*lim.FDFraction, lim.FDSlack)}
	var why []string
	if len(cycles) == 0 {
		why = append(why, "no cycle ran")
	}
	for i, c := range cycles {
		why = append(why, wave(c, fmt.Sprintf("cycle %d", c.Cycle))...)
		if !c.Settled {
			why = append(why, fmt.Sprintf("cycle %d: %.0f sessions still open after %.0fs (baseline %.0f)", c.Cycle, c.Sessions, c.SettleS, base.Sessions))
		}
		if c.FDs > v.FDLimit {
			why = append(why, fmt.Sprintf("cycle %d: %.0f descriptors open, baseline %.0f (at most %.0f)", c.Cycle, c.FDs, base.FDs, v.FDLimit))
		}
		// RSS is judged with the clients connected (see LoadedRSSMB),
		// from the third cycle on: the first two warm the edge up.
		if prev := cycles[max(i-1, 0)].LoadedRSSMB; i >= 2 && prev > 0 && c.LoadedRSSMB > prev*(1+lim.RSSGrowth) {
			why = append(why, fmt.Sprintf("cycle %d: RSS with the clients connected %.1f MB, %.0f%% more than cycle %d's %.1f MB (at most %.0f%%)",
				c.Cycle, c.LoadedRSSMB, 100*(c.LoadedRSSMB/prev-1), cycles[i-1].Cycle, prev, 100*lim.RSSGrowth))
		}
	}
	why = append(why, wave(last, "last wave")...)
	v.OK, v.Reasons = len(why) == 0, why
	return v
}

// wave says why a wave of clients fell short: not all connected, or not
// all received their notification.
func wave(s soakSample, name string) []string {
	var why []string
	if s.Connected < int64(s.Clients) {
		why = append(why, fmt.Sprintf("%s: %d of %d clients connected", name, s.Connected, s.Clients))
	}
	if s.Received < int64(s.Clients) {
		why = append(why, fmt.Sprintf("%s: %d of %d clients received their notification", name, s.Received, s.Clients))
	}
	return why
}
