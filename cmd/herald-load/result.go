package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// phaseResult is what one phase of a run measured: the common part
// (processes, machine) and the part of its kind.
type phaseResult struct {
	Name     string        `json:"name"` // "connect", "personal 10000/s", "broadcast", "storm"
	Run      string        `json:"run,omitempty"`
	Started  time.Time     `json:"started"`
	ElapsedS float64       `json:"elapsed_s"`
	LoadAvg  [2][3]float64 `json:"load_avg"` // before, after
	// MachineCPUS is the CPU seconds every core was busy during the
	// phase; OtherCPUS the part of it in no sampled process, the load
	// generator included: other work on the machine (the noise in these
	// figures) and the kernel's network softirq time.
	MachineCPUS float64      `json:"machine_cpu_s"`
	OtherCPUS   float64      `json:"other_cpu_s"`
	Processes   []procResult `json:"processes"`
	LoadCPUS    float64      `json:"load_cpu_s"` // the workers' CPU seconds
	CoordCPUS   float64      `json:"coordinator_cpu_s"`

	Connect   *connectResult   `json:"connect,omitempty"`
	Idle      *idleResult      `json:"idle,omitempty"`
	Personal  *personalResult  `json:"personal,omitempty"`
	Broadcast *broadcastResult `json:"broadcast,omitempty"`
	Storm     *stormResult     `json:"storm,omitempty"`
	Profiles  []string         `json:"cpu_profiles,omitempty"`

	OK      bool     `json:"ok"`
	Verdict string   `json:"verdict"`
	Errors  []string `json:"errors,omitempty"`
}

// procResult is one server process over a phase.
type procResult struct {
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	CPUS       float64    `json:"cpu_s"`
	RSSMB      [2]float64 `json:"rss_mb"` // before, after
	Goroutines [2]float64 `json:"goroutines,omitempty"`
	FDs        [2]float64 `json:"fds,omitempty"`
	Sessions   [2]float64 `json:"sessions,omitempty"`
	StoreMB    [2]float64 `json:"store_mb,omitempty"`
	// WireBytes are the bytes of data frames an edge wrote over the
	// phase (herald_edge_written_bytes_total: headers included, after
	// compression); 0 for other processes.
	WireBytes float64 `json:"wire_bytes,omitempty"`
	// Commands are a Redis's costliest commands over the phase, by its
	// INFO commandstats; nil for other processes.
	Commands []cmdCost `json:"redis_commands,omitempty"`
	Errors   []string  `json:"errors,omitempty"`
}

// connectResult: the clients connecting, and what it cost the server.
type connectResult struct {
	Clients     int              `json:"clients"`
	Connected   int64            `json:"connected"`
	Failures    int64            `json:"failures"` // sessions that ended before a welcome
	ConnectS    float64          `json:"connect_s"`
	Rate        float64          `json:"rate"`       // connections per second
	ConnectMS   latencySummary   `json:"connect_ms"` // start of a client -> its welcome
	EdgeCPUMS   float64          `json:"edge_cpu_per_conn_ms"`
	ServerCPUMS float64          `json:"server_cpu_per_conn_ms"` // every server process and Redis
	RedisCPUMS  float64          `json:"redis_cpu_per_conn_ms"`
	RedisCmds   string           `json:"redis_commands_per_conn,omitempty"` // as personalResult.RedisCmds, per connection
	Closes      map[string]int64 `json:"closes,omitempty"`
}

// idleResult: memory per idle connection, every client connected.
type idleResult struct {
	Connections    int64   `json:"connections"`
	SettleS        float64 `json:"settle_s"`
	RSSPerConnB    float64 `json:"rss_per_conn_b"` // edges' RSS above the baseline before any client
	HeapPerConnB   float64 `json:"heap_inuse_per_conn_b"`
	StackPerConnB  float64 `json:"stack_per_conn_b"`
	GoroutinesConn float64 `json:"goroutines_per_conn"`
	FDsPerConn     float64 `json:"fds_per_conn"`
	GoMetrics      bool    `json:"go_metrics"` // heap, stacks and goroutines were read (Herald's /metrics); false: n/a
}

// personalResult: personal events at a rate, and what arrived.
type personalResult struct {
	Rate          float64         `json:"rate"`
	DurationS     float64         `json:"duration_s"`
	Published     int64           `json:"published"`
	PublishErrors int64           `json:"publish_errors"`
	PublishS      float64         `json:"publish_s"`
	AchievedRate  float64         `json:"achieved_rate"`
	PublishLagMS  float64         `json:"publish_lag_max_ms"` // furthest the publisher fell behind its schedule
	DrainS        float64         `json:"drain_s"`
	DrainEnd      string          `json:"drain_end"` // complete, stalled (nothing for 3 s) or timeout (still arriving)
	Expected      int64           `json:"expected"`
	Delivered     int64           `json:"delivered"`
	Lost          int64           `json:"lost"`
	LostUsers     []string        `json:"lost_users,omitempty"` // the first few: "u17: 11 of 12"
	Extra         int64           `json:"extra"`                // more than expected for a user (after dedup)
	Foreign       int64           `json:"foreign"`              // not of this phase, or not for the user
	Duplicates    int64           `json:"duplicates"`
	Acks          int64           `json:"acks"` // ack frames the clients sent
	LatencyMS     latencySummary  `json:"latency_ms"`
	Windows       []windowSummary `json:"latency_windows,omitempty"`
	CPUPerNotifUS float64         `json:"cpu_per_notification_us"` // every server process and Redis
	RedisPerNotUS float64         `json:"redis_cpu_per_notification_us"`
	EdgePerNotUS  float64         `json:"edge_cpu_per_notification_us"`
	WirePerNotB   float64         `json:"edge_wire_bytes_per_notification,omitempty"` // Herald: bytes the edges wrote per notification delivered
	// RedisCmds is where Redis's time went, per notification delivered:
	// each costly command's time (INFO commandstats, so the commands of a
	// script or of a MULTI count in its evalsha or exec and again under
	// their names) and calls.
	RedisCmds string  `json:"redis_commands_per_notification,omitempty"`
	SLOMS     float64 `json:"slo_ms,omitempty"`
	Held      bool    `json:"held"` // p99 within the SLO, nothing lost, no publish error
}

// broadcastResult: tenant-wide events, one at a time.
type broadcastResult struct {
	Clients   int64          `json:"clients"`
	Rounds    []roundResult  `json:"rounds"`
	Median    float64        `json:"median_ms"` // until the last client has a round
	P90       float64        `json:"p90_ms"`
	Max       float64        `json:"max_ms"`
	Complete  int            `json:"complete_rounds"`
	Expected  int64          `json:"expected"`
	Delivered int64          `json:"delivered"`
	Lost      int64          `json:"lost"`
	Acks      int64          `json:"acks"`
	LatencyMS latencySummary `json:"latency_ms"`
	CPUPerNot float64        `json:"cpu_per_notification_us"`
}

type roundResult struct {
	N        int     `json:"n"`
	Received int64   `json:"received"`
	Of       int64   `json:"of"`
	LastMS   float64 `json:"last_ms"` // publish -> the last client's receipt
	Complete bool    `json:"complete"`
}

// stormResult: every client dropped at once, reconnecting within a
// window and resuming, while personal events keep coming.
type stormResult struct {
	Clients     int64   `json:"clients"`
	WithinS     float64 `json:"within_s"`
	Reconnected int64   `json:"reconnected"` // welcomes of the storm's reconnects
	// Resume says the target resumes a reconnecting client (Traits). Without
	// it the clients only reconnect: Resumed is 0, and what they missed while
	// away is NotRecoverable (by design), not Personal.Lost.
	Resume         bool           `json:"resume"`
	NotRecoverable int64          `json:"not_recoverable,omitempty"`
	Resumed        int64          `json:"resumed"` // of them, clients that asked to resume from their positions
	LastWelcomeS   float64        `json:"last_welcome_s"`
	WelcomeMS      latencySummary `json:"welcome_ms"` // drop -> welcome of the reconnect
	Personal       personalResult `json:"personal"`
}

// resumedText is Resumed, or "n/a" for a target that does not resume.
func (s *stormResult) resumedText() string {
	if !s.Resume {
		return "n/a"
	}
	return fmt.Sprint(s.Resumed)
}

// verdict sets OK and the verdict from the reasons a phase missed.
func (p *phaseResult) verdict(why []string) {
	p.OK = len(why) == 0
	switch {
	case !p.OK:
		p.Verdict = "NOT OK: " + strings.Join(why, "; ")
	case len(p.Errors) > 0:
		p.Verdict = "OK (with errors noted)"
	default:
		p.Verdict = "OK"
	}
}

// addErrors keeps the first few distinct messages.
func (p *phaseResult) addErrors(prefix string, errs ...string) {
	for _, e := range errs {
		if e == "" {
			continue
		}
		e = prefix + e
		if len(p.Errors) < 12 && !slices.Contains(p.Errors, e) {
			p.Errors = append(p.Errors, e)
		}
	}
}

// minAchieved is the share of a rate the publisher must reach for the
// rate to count as held: a publishing path that cannot take the events
// (its latency is not in publish -> receipt) does not hold the rate.
const minAchieved = 0.95

// judgePersonal says why personal events missed: loss, publish errors,
// and (slo > 0) p99 above the SLO.
func judgePersonal(r *personalResult) []string {
	var why []string
	switch {
	case r.Lost > 0 && r.DrainEnd == "timeout":
		why = append(why, fmt.Sprintf("%d not delivered by the end of the drain, still arriving (a backlog: the rate is not sustained)", r.Lost))
	case r.Lost > 0:
		why = append(why, fmt.Sprintf("%d lost", r.Lost))
	}
	if r.PublishErrors > 0 {
		why = append(why, fmt.Sprintf("%d publish errors", r.PublishErrors))
	}
	if r.Published == 0 {
		why = append(why, "nothing published")
	}
	if r.SLOMS > 0 && r.LatencyMS.P99 >= r.SLOMS {
		why = append(why, fmt.Sprintf("p99 %.1f ms, not below %.3g ms", r.LatencyMS.P99, r.SLOMS))
	}
	if r.SLOMS > 0 && r.Published > 0 && r.AchievedRate < minAchieved*r.Rate {
		why = append(why, fmt.Sprintf("published at %.0f/s, not the %.0f/s asked: the target's publishing path fell behind", r.AchievedRate, r.Rate))
	}
	r.Held = len(why) == 0
	return why
}
