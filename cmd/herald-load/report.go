package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// benchSummary is the result of one run: the JSON summary line, and the
// source of the table.
type benchSummary struct {
	Mode     string    `json:"mode"`
	Label    string    `json:"label,omitempty"`
	Run      string    `json:"run"`
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	ElapsedS float64   `json:"elapsed_s"`
	Nproc    int       `json:"nproc"`
	LoadAvg  struct {
		Before [3]float64 `json:"before"`
		After  [3]float64 `json:"after"`
	} `json:"load_avg"`
	Clients int      `json:"clients"`
	Workers int      `json:"workers"`
	Edges   []string `json:"edges"`

	Connected       int64            `json:"connected"` // clients that had their welcome
	Unconnected     int64            `json:"unconnected"`
	ConnectFailures int64            `json:"connect_failures"` // attempts that ended before a welcome
	ConnectS        float64          `json:"connect_s"`        // until all had their welcome (or the timeout)
	ConnectRate     float64          `json:"connect_rate"`     // connections per second
	ConnectMS       latencySummary   `json:"connect_ms"`       // start of a client -> its welcome
	Closes          map[string]int64 `json:"closes,omitempty"` // by close code; -1: dial failed

	Rate          float64         `json:"rate,omitempty"` // personal: target events/s
	Published     int64           `json:"published,omitempty"`
	PublishErrors int64           `json:"publish_errors,omitempty"`
	PublishS      float64         `json:"publish_s,omitempty"`
	AchievedRate  float64         `json:"achieved_rate,omitempty"`
	PublishLagMS  float64         `json:"publish_lag_max_ms,omitempty"` // furthest the publisher fell behind its schedule
	DrainS        float64         `json:"drain_s,omitempty"`
	DrainEnd      string          `json:"drain_end,omitempty"` // complete, stalled (nothing for 3 s) or timeout (still arriving)
	Expected      int64           `json:"expected"`
	Delivered     int64           `json:"delivered"`
	Lost          int64           `json:"lost"`
	Extra         int64           `json:"extra"`   // more than expected for a user (after dedup)
	Foreign       int64           `json:"foreign"` // not of this run or not for the user
	Duplicates    int64           `json:"duplicates"`
	LatencyMS     *latencySummary `json:"latency_ms,omitempty"`      // XADD -> receipt, every notification
	Windows       []windowSummary `json:"latency_windows,omitempty"` // personal: the same by 5 s of publish time
	Rounds        []roundResult   `json:"rounds,omitempty"`
	BroadcastMS   *broadcastStats `json:"broadcast_ms,omitempty"`

	// MachineCPUS is the CPU seconds every core was busy from the first
	// sample to the last; OtherCPUS the part of it that was neither a
	// Herald process sampled, Redis, nor this bench: other work on the
	// machine (the noise in these figures) and the kernel's network
	// softirq time, which no process is charged with.
	MachineCPUS float64 `json:"machine_cpu_s"`
	OtherCPUS   float64 `json:"other_cpu_s"`

	Processes             []procReport `json:"processes"`
	RedisCPU              phaseCPU     `json:"redis_cpu_s"`
	LoadCPUS              float64      `json:"load_cpu_s"`                            // the workers' own CPU seconds
	CoordinatorCPUS       float64      `json:"coordinator_cpu_s"`                     // this process: publishing, sampling, aggregating
	LoadMaxRSSMB          float64      `json:"load_max_rss_mb"`                       // largest worker
	EdgeRSSPerConn        float64      `json:"edge_rss_per_conn_b,omitempty"`         // idle: (connected - before) / connections
	EdgeRSSPerConnSettled float64      `json:"edge_rss_per_conn_settled_b,omitempty"` // idle: (after --settle - before) / connections
	EdgeHeapPerConn       float64      `json:"edge_heap_inuse_per_conn_b,omitempty"`  // idle: Go heap in use (live and not yet collected)
	EdgeStackPerConn      float64      `json:"edge_stack_per_conn_b,omitempty"`       // idle: goroutine stacks
	EdgeGoroutinesPerConn float64      `json:"edge_goroutines_per_conn,omitempty"`
	EdgeCPUPerConnMS      float64      `json:"edge_cpu_per_conn_ms,omitempty"`    // connect: edges' CPU / new connection
	HeraldCPUPerConnMS    float64      `json:"herald_cpu_per_conn_ms,omitempty"`  // connect: every Herald process + Redis
	CPUPerNotifUS         float64      `json:"cpu_per_notification_us,omitempty"` // every Herald process + Redis / delivered

	Profiles []string `json:"cpu_profiles,omitempty"`

	SLOMS   float64  `json:"slo_ms,omitempty"`
	OK      *bool    `json:"ok,omitempty"`
	Verdict string   `json:"verdict"`
	Errors  []string `json:"errors,omitempty"`

	o        *benchFlags
	expected []int32 // personal: per user
	connect  *histogram
	latency  *histogram
	windows  *windowHists
	pubStart int64 // personal: unix µs of the first publish
}

type roundResult struct {
	N        int     `json:"n"`
	Received int64   `json:"received"`
	Of       int64   `json:"of"`
	LastMS   float64 `json:"last_ms"` // publish -> the last client's receipt
	Complete bool    `json:"complete"`
	pub      int64
}

type broadcastStats struct {
	Median   float64 `json:"median"`
	P90      float64 `json:"p90"`
	Max      float64 `json:"max"`
	Complete int     `json:"complete_rounds"`
}

// phaseCPU is CPU seconds spent while connecting and during the load (for
// idle: during --settle).
type phaseCPU struct {
	Connect float64 `json:"connect"`
	Load    float64 `json:"load"`
}

// procReport is what one Herald process's /metrics said.
type procReport struct {
	Name        string     `json:"name"`
	URL         string     `json:"url"`
	Edge        bool       `json:"edge"`
	CPU         phaseCPU   `json:"cpu_s"`
	RSSMB       [3]float64 `json:"rss_mb"`     // before, connected, after
	Goroutines  [3]float64 `json:"goroutines"` // before, connected, after
	Sessions    float64    `json:"sessions"`   // when connected
	CPUPerNotUS float64    `json:"cpu_per_notification_us,omitempty"`
	Errors      []string   `json:"errors,omitempty"`
}

func newSummary(o *benchFlags, args []string) *benchSummary {
	return &benchSummary{Mode: o.mode, Label: o.label, Run: o.run, Command: commandLine(args), Started: time.Now().UTC(),
		Nproc: runtime.NumCPU(), Clients: o.clients, Workers: o.workers, Edges: splitList(o.edges), SLOMS: o.sloMS, o: o,
		connect: new(histogram), latency: new(histogram), windows: new(windowHists)}
}

// commandLine is the command as typed, shell-quoted where needed.
func commandLine(args []string) string {
	parts := []string{"herald-load", "bench"}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func (s *benchSummary) publishDone(pb *publisher) {
	elapsed := pb.elapsed
	s.Rate = pb.rate
	s.Published, s.PublishErrors = pb.sent.Load(), pb.errors.Load()
	s.PublishS = round3(elapsed.Seconds())
	s.AchievedRate = round3(perSecond(int(s.Published), elapsed))
	s.PublishLagMS = round3(float64(pb.maxLagUS.Load()) / 1000)
	if e := pb.firstErr.Load(); e != nil {
		s.Errors = append(s.Errors, "publish: "+*e)
	}
}

func (s *benchSummary) addRound(r int, pub, count, of, maxUS int64) {
	s.Rounds = append(s.Rounds, roundResult{N: r, Received: count, Of: of, LastMS: round3(float64(maxUS) / 1000),
		Complete: count >= of, pub: pub})
}

// addFinals merges the workers' final reports.
func (s *benchSummary) addFinals(finals []workerMsg) {
	s.Closes = make(map[string]int64)
	perUser := make([]int64, s.Clients)
	for _, m := range finals {
		s.Connected += m.Welcomed
		s.ConnectFailures += m.Failures
		s.Foreign += m.Foreign
		s.Duplicates += m.Dups
		s.LoadCPUS += m.CPU
		s.LoadMaxRSSMB = max(s.LoadMaxRSSMB, round3(float64(m.MaxRSSKB)/1024))
		for k, v := range m.Closes {
			s.Closes[k] += v
		}
		for _, e := range m.Errors {
			if len(s.Errors) < 12 && !slices.Contains(s.Errors, e) {
				s.Errors = append(s.Errors, "client: "+e)
			}
		}
		if m.Connect != nil {
			s.connect.merge(*m.Connect)
		}
		if m.Latency != nil {
			s.latency.merge(*m.Latency)
		}
		s.windows.merge(m.Windows)
		first := m.Worker * s.Clients / s.Workers
		for i, v := range m.PerUser {
			if first+i < len(perUser) {
				perUser[first+i] = v
			}
		}
	}
	s.LoadCPUS = round3(s.LoadCPUS)
	for u, got := range perUser {
		s.Delivered += got
		if s.expected != nil {
			want := int64(s.expected[u])
			s.Lost += max(0, want-got)
			s.Extra += max(0, got-want)
		}
	}
}

// finish computes the derived figures and the verdict once the run is over.
func (s *benchSummary) finish(b *benchRun) {
	s.ElapsedS = round3(time.Since(s.Started).Seconds())
	s.LoadAvg.Before, s.LoadAvg.After = b.before.Load, b.after.Load
	s.Unconnected = int64(s.Clients) - s.Connected
	if s.ConnectS > 0 {
		s.ConnectRate = round3(float64(s.Connected) / s.ConnectS)
	}
	s.ConnectMS = s.connect.summary()
	if s.Mode == modePersonal || s.Mode == modeBroadcast {
		l := s.latency.summary()
		s.LatencyMS = &l
	}
	if s.pubStart > 0 { // personal
		s.Windows = s.windows.summaries(s.pubStart)
	}
	if s.Mode == modeBroadcast {
		s.broadcastTotals()
	}
	s.processes(b)
	if b.before.Busy >= 0 && b.after.Busy >= 0 {
		s.MachineCPUS = round3(b.after.Busy - b.before.Busy)
		ours := s.RedisCPU.Connect + s.RedisCPU.Load + s.LoadCPUS + s.CoordinatorCPUS
		for _, p := range s.Processes {
			ours += p.CPU.Connect + p.CPU.Load
		}
		s.OtherCPUS = round3(max(0, s.MachineCPUS-ours))
	}
	s.judge()
}

func (s *benchSummary) broadcastTotals() {
	s.Expected, s.Lost = 0, 0
	var lasts []float64
	st := &broadcastStats{}
	for _, r := range s.Rounds {
		s.Expected += r.Of
		s.Lost += max(0, r.Of-r.Received)
		if r.Complete {
			st.Complete++
			lasts = append(lasts, r.LastMS)
			st.Max = max(st.Max, r.LastMS)
		}
	}
	st.Median, st.P90 = medianP90(lasts)
	s.BroadcastMS = st
}

// processes fills the per-process figures and the derived ones.
func (s *benchSummary) processes(b *benchRun) {
	if s.Mode == modePersonal {
		for _, e := range s.expected {
			s.Expected += int64(e)
		}
	}
	get := func(sm sample, i int, name string) float64 {
		if i < len(sm.Procs) && sm.Procs[i] != nil {
			return sm.Procs[i][name]
		}
		return 0
	}
	var edgeCPU, allCPU, edgeRSS, edgeRSSSettled, edgeG, edgeHeap, edgeStack float64
	for i, ep := range b.eps {
		p := procReport{Name: ep.Name, URL: ep.URL}
		for _, sm := range []sample{b.before, b.connected, b.after} {
			if i < len(sm.Procs) && sm.Procs[i] != nil {
				if _, ok := sm.Procs[i][metricSessions]; ok {
					p.Edge = true
				}
			}
			if i < len(sm.Errs) && sm.Errs[i] != "" && !slices.Contains(p.Errors, sm.Errs[i]) {
				p.Errors = append(p.Errors, sm.Errs[i])
			}
		}
		for j, sm := range []sample{b.before, b.connected, b.after} {
			p.RSSMB[j] = round3(get(sm, i, metricRSS) / (1 << 20))
			p.Goroutines[j] = get(sm, i, metricGoroutines)
		}
		p.Sessions = get(b.connected, i, metricSessions)
		p.CPU = phaseCPU{Connect: round3(get(b.connected, i, metricCPU) - get(b.before, i, metricCPU)),
			Load: round3(get(b.after, i, metricCPU) - get(b.connected, i, metricCPU))}
		if s.Delivered > 0 && s.Mode != modeIdle && s.Mode != modeConnect {
			p.CPUPerNotUS = round3(p.CPU.Load / float64(s.Delivered) * 1e6)
		}
		allCPU += p.CPU.Load
		if p.Edge {
			edgeCPU += p.CPU.Connect
			edgeRSS += get(b.connected, i, metricRSS) - get(b.before, i, metricRSS)
			edgeRSSSettled += get(b.after, i, metricRSS) - get(b.before, i, metricRSS)
			edgeG += get(b.connected, i, metricGoroutines) - get(b.before, i, metricGoroutines)
			edgeHeap += get(b.after, i, metricHeapInuse) - get(b.before, i, metricHeapInuse)
			edgeStack += get(b.after, i, metricStackInuse) - get(b.before, i, metricStackInuse)
		}
		s.Processes = append(s.Processes, p)
	}
	if b.before.RedisCPU >= 0 && b.connected.RedisCPU >= 0 && b.after.RedisCPU >= 0 {
		s.RedisCPU = phaseCPU{Connect: round3(b.connected.RedisCPU - b.before.RedisCPU), Load: round3(b.after.RedisCPU - b.connected.RedisCPU)}
	}
	n := float64(s.Connected)
	switch {
	case s.Mode == modeIdle && n > 0:
		s.EdgeRSSPerConn, s.EdgeRSSPerConnSettled = round3(edgeRSS/n), round3(edgeRSSSettled/n)
		s.EdgeGoroutinesPerConn = round3(edgeG / n)
		s.EdgeHeapPerConn, s.EdgeStackPerConn = round3(edgeHeap/n), round3(edgeStack/n)
	case s.Mode == modeConnect && n > 0:
		s.EdgeCPUPerConnMS = round3(edgeCPU / n * 1000)
		herald := s.RedisCPU.Connect
		for _, p := range s.Processes {
			herald += p.CPU.Connect
		}
		s.HeraldCPUPerConnMS = round3(herald / n * 1000)
	case s.Delivered > 0 && (s.Mode == modePersonal || s.Mode == modeBroadcast):
		s.CPUPerNotifUS = round3((allCPU + s.RedisCPU.Load) / float64(s.Delivered) * 1e6)
	}
}

// judge sets OK and the verdict: every client connected, nothing lost,
// and (with --slo-ms) personal p99 or broadcast median within the bound.
func (s *benchSummary) judge() {
	var why []string
	if s.Unconnected > 0 {
		why = append(why, fmt.Sprintf("%d clients never connected", s.Unconnected))
	}
	switch {
	case s.Lost > 0 && s.DrainEnd == "timeout":
		why = append(why, fmt.Sprintf("%d not delivered by the end of the drain, still arriving (a backlog: the rate is not sustained)", s.Lost))
	case s.Lost > 0:
		why = append(why, fmt.Sprintf("%d lost", s.Lost))
	}
	if s.PublishErrors > 0 {
		why = append(why, fmt.Sprintf("%d publish errors", s.PublishErrors))
	}
	if s.Mode == modePersonal && s.Published == 0 {
		why = append(why, "nothing published")
	}
	if s.Mode == modeBroadcast && (s.BroadcastMS == nil || s.BroadcastMS.Complete < s.o.rounds) {
		why = append(why, "not every round reached every client")
	}
	if s.SLOMS > 0 {
		switch {
		case s.Mode == modePersonal && s.LatencyMS.P99 > s.SLOMS:
			why = append(why, fmt.Sprintf("p99 %.3f ms > %.3g ms", s.LatencyMS.P99, s.SLOMS))
		case s.Mode == modeBroadcast && s.BroadcastMS.Median > s.SLOMS:
			why = append(why, fmt.Sprintf("median %.3f ms > %.3g ms", s.BroadcastMS.Median, s.SLOMS))
		}
	}
	if len(s.Errors) > 0 && len(why) == 0 && s.Unconnected == 0 {
		s.Verdict = "OK (with errors noted)"
	}
	ok := len(why) == 0
	s.OK = &ok
	if ok && s.Verdict == "" {
		s.Verdict = "OK"
	} else if !ok {
		s.Verdict = "NOT OK: " + strings.Join(why, "; ")
	}
}

// print writes the table (unless jsonOnly) and the JSON summary line.
func (s *benchSummary) print(w io.Writer, jsonOnly bool) error {
	if !jsonOnly {
		if err := s.table(w); err != nil {
			return err
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// appendMarkdown appends the command, the machine's conditions, the table
// and the JSON line to path.
func (s *benchSummary) appendMarkdown(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("bench markdown: %w", err)
	}
	defer f.Close()
	title := s.Mode
	if s.Label != "" && s.Label != s.Mode {
		title = s.Label + " (" + s.Mode + ")"
	}
	fmt.Fprintf(f, "\n### %s, %s\n\n", title, s.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(f, "Command: `%s`  \nMachine: %d cores, load average %.2f %.2f %.2f before, %.2f %.2f %.2f after (shared with other work)  \nVerdict: **%s**\n\n```\n",
		s.Command, s.Nproc, s.LoadAvg.Before[0], s.LoadAvg.Before[1], s.LoadAvg.Before[2],
		s.LoadAvg.After[0], s.LoadAvg.After[1], s.LoadAvg.After[2], s.Verdict)
	if err := s.table(f); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	_, err = fmt.Fprintf(f, "```\n\n<details><summary>JSON</summary>\n\n```json\n%s\n```\n</details>\n", b)
	return err
}

// table writes the human-readable summary.
func (s *benchSummary) table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	head := s.Mode
	if s.Label != "" && s.Label != s.Mode {
		head = s.Label + " (" + s.Mode + ")"
	}
	row("bench", "%s: %d clients in %d workers -> %s, run %s", head, s.Clients, s.Workers, strings.Join(s.Edges, ","), s.Run)
	row("connect", "%d/%d in %.2fs (%.0f/s), %d failed attempts, closes %v", s.Connected, s.Clients, s.ConnectS, s.ConnectRate, s.ConnectFailures, s.Closes)
	c := s.ConnectMS
	row("connect ms", "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f", c.P50, c.P90, c.P99, c.Max)
	if s.Mode == modePersonal {
		row("publish", "%d at %.0f/s target, %.0f/s achieved in %.2fs, %d errors, max lag %.1f ms, drain %.2fs (%s)",
			s.Published, s.Rate, s.AchievedRate, s.PublishS, s.PublishErrors, s.PublishLagMS, s.DrainS, s.DrainEnd)
	}
	if s.Mode == modeBroadcast && s.BroadcastMS != nil {
		b := s.BroadcastMS
		row("broadcast ms", "last client: median %.2f  p90 %.2f  max %.2f over %d/%d complete rounds", b.Median, b.P90, b.Max, b.Complete, len(s.Rounds))
	}
	if s.Mode == modePersonal || s.Mode == modeBroadcast {
		row("delivered", "%d of %d expected, lost %d, extra %d, foreign %d, client dups %d", s.Delivered, s.Expected, s.Lost, s.Extra, s.Foreign, s.Duplicates)
		l := s.LatencyMS
		row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d, XADD -> receipt)", l.P50, l.P90, l.P99, l.P999, l.Max, l.N)
		if len(s.Windows) > 0 {
			p99s := make([]string, len(s.Windows))
			for i, w := range s.Windows {
				p99s[i] = "-" // nothing published in it arrived
				if w.N > 0 {
					p99s[i] = strconv.FormatFloat(w.P99, 'f', 1, 64)
				}
			}
			row("p99 per 5 s", "%s ms (by publish time, windows of 5 s on the clock, the first holding the first publish)", strings.Join(p99s, " "))
		}
		row("cpu/notif", "%.1f µs (every Herald process + Redis)", s.CPUPerNotifUS)
	}
	switch s.Mode {
	case modeIdle:
		row("edge memory", "%.0f B/conn RSS when connected, %.0f B/conn after settling (Go heap in use %.0f, stacks %.0f); %.2f goroutines/conn",
			s.EdgeRSSPerConn, s.EdgeRSSPerConnSettled, s.EdgeHeapPerConn, s.EdgeStackPerConn, s.EdgeGoroutinesPerConn)
	case modeConnect:
		row("edge cpu", "%.3f ms/conn (edges), %.3f ms/conn (every Herald process + Redis)", s.EdgeCPUPerConnMS, s.HeraldCPUPerConnMS)
	}
	for _, p := range s.Processes {
		kind, sessions := "", ""
		if p.Edge {
			kind, sessions = " [edge]", fmt.Sprintf("; sessions %.0f", p.Sessions)
		}
		row("process "+p.Name+kind, "cpu %.2fs connect, %.2fs load; rss MB %.1f -> %.1f -> %.1f; goroutines %.0f -> %.0f -> %.0f%s%s",
			p.CPU.Connect, p.CPU.Load, p.RSSMB[0], p.RSSMB[1], p.RSSMB[2], p.Goroutines[0], p.Goroutines[1], p.Goroutines[2], sessions, errSuffix(p.Errors))
	}
	row("redis", "cpu %.2fs connect, %.2fs load", s.RedisCPU.Connect, s.RedisCPU.Load)
	row("load generator", "cpu %.2fs in workers (largest rss %.0f MB), %.2fs in the coordinator (publisher)", s.LoadCPUS, s.LoadMaxRSSMB, s.CoordinatorCPUS)
	row("machine", "%d cores, load avg %.2f %.2f %.2f -> %.2f %.2f %.2f; busy %.1f cpu-s in %.1fs, %.1f of them in no sampled process (other work, kernel softirq)",
		s.Nproc, s.LoadAvg.Before[0], s.LoadAvg.Before[1], s.LoadAvg.Before[2], s.LoadAvg.After[0], s.LoadAvg.After[1], s.LoadAvg.After[2],
		s.MachineCPUS, s.ElapsedS, s.OtherCPUS)
	for _, p := range s.Profiles {
		row("cpu profile", "%s", p)
	}
	for _, e := range s.Errors {
		row("error", "%s", e)
	}
	row("verdict", "%s", s.Verdict)
	return tw.Flush()
}

func errSuffix(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return " (scrape: " + strings.Join(errs, "; ") + ")"
}
