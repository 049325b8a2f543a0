package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runReport is the result of a whole run: a headline per scenario, every
// phase's figures, and the verdict.
type runReport struct {
	Target      string         `json:"target"`
	Label       string         `json:"label,omitempty"`
	Run         string         `json:"run"`
	Command     string         `json:"command"`
	Started     time.Time      `json:"started"`
	ElapsedS    float64        `json:"elapsed_s"`
	Nproc       int            `json:"nproc"`
	Clients     int            `json:"clients"`
	IdleClients int            `json:"idle_clients"`
	Workers     int            `json:"workers"`
	Acks        string         `json:"acks"`
	Idempotency bool           `json:"idempotency"`
	Traits      Traits         `json:"traits"`
	Scenarios   []string       `json:"scenarios"`
	Headlines   []headline     `json:"headlines"`
	BestRate    float64        `json:"best_personal_rate,omitempty"`
	RefRate     float64        `json:"ref_rate,omitempty"` // --ref-rate: the personal rate measured in every run
	Phases      []*phaseResult `json:"phases"`
	LoadCPUS    float64        `json:"load_cpu_s"`      // the workers' CPU seconds, whole run
	LoadMaxRSS  float64        `json:"load_max_rss_mb"` // largest worker
	OK          bool           `json:"ok"`
	Verdict     string         `json:"verdict"`
	Errors      []string       `json:"errors,omitempty"`
}

// headline is one figure a scenario is run for.
type headline struct {
	Scenario string `json:"scenario"`
	Figure   string `json:"figure"`
	Value    string `json:"value"`
	OK       bool   `json:"ok"`
}

func newRunReport(o *runFlags, t Target, command string) *runReport {
	tr := t.Traits()
	acks := o.acks.String()
	if !tr.Acks {
		acks = "n/a"
	}
	return &runReport{Target: t.Name(), Label: o.label, Run: o.run, Command: command, Started: time.Now().UTC(),
		Nproc: runtime.NumCPU(), Clients: o.clients, IdleClients: o.idleClients, Workers: o.workers, Acks: acks,
		Idempotency: o.idempotency && tr.Keys, Traits: tr, Scenarios: o.scenarios, RefRate: o.refRate}
}

func (r *runReport) headline(scenario, figure, value string, ok bool) {
	r.Headlines = append(r.Headlines, headline{Scenario: scenario, Figure: figure, Value: value, OK: ok})
}

// addFinals adds the workers' last lines.
func (r *runReport) addFinals(finals []workerMsg) {
	for _, m := range finals {
		r.LoadCPUS += m.CPU
		r.LoadMaxRSS = max(r.LoadMaxRSS, round3(float64(m.MaxRSSKB)/1024))
	}
	r.LoadCPUS = round3(r.LoadCPUS)
}

// finish sets the verdict: every headline met, and no error that ended
// the run. The personal ladder's misses above the highest rate held are
// its result, not a failure; a ladder that held no rate is.
func (r *runReport) finish() {
	r.ElapsedS = round3(time.Since(r.Started).Seconds())
	var why []string
	for _, h := range r.Headlines {
		if !h.OK {
			why = append(why, h.Scenario+": "+h.Figure)
		}
	}
	if len(r.Errors) > 0 {
		why = append(why, "the run did not finish: "+r.Errors[0])
	}
	r.OK = len(why) == 0
	if r.OK {
		r.Verdict = "OK"
	} else {
		r.Verdict = "NOT OK: " + strings.Join(why, "; ")
	}
}

// commandLine is the command as typed, shell-quoted where needed.
func commandLine(sub string, args []string) string {
	parts := []string{"herald-load", sub}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// print writes the tables (unless jsonOnly) and the JSON summary line.
func (r *runReport) print(w io.Writer, jsonOnly bool) error {
	if !jsonOnly {
		if err := r.tables(w); err != nil {
			return err
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// appendMarkdown appends the run to path: the command, the headline
// table, every phase's table and the JSON.
func (r *runReport) appendMarkdown(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("markdown report: %w", err)
	}
	defer f.Close()
	title := "herald-load run"
	if r.Label != "" {
		title = r.Label
	}
	fmt.Fprintf(f, "\n### %s, %s\n\n", title, r.Started.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(f, "Command: `%s`  \nTarget %s; %d clients (%d idle at most) in %d workers; acks %s; idempotency keys %v; %d cores  \nVerdict: **%s**\n\n",
		r.Command, r.Target, r.Clients, r.IdleClients, r.Workers, r.Acks, r.Idempotency, r.Nproc, r.Verdict)
	fmt.Fprintln(f, "| scenario | figure | measured | |\n|---|---|---|---|")
	for _, h := range r.Headlines {
		fmt.Fprintf(f, "| %s | %s | %s | %s |\n", h.Scenario, h.Figure, mdEscape(h.Value), okWord(h.OK))
	}
	fmt.Fprintln(f, "\n```")
	if err := r.phaseTables(f); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	_, err = fmt.Fprintf(f, "```\n\n<details><summary>JSON</summary>\n\n```json\n%s\n```\n</details>\n", b)
	return err
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func okWord(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// tables writes the headlines and every phase's table.
func (r *runReport) tables(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "run\t%s against %s: %d clients in %d workers, acks %s, idempotency %v, run %s\n",
		strings.Join(r.Scenarios, ","), r.Target, r.Clients, r.Workers, r.Acks, r.Idempotency, r.Run)
	for _, h := range r.Headlines {
		fmt.Fprintf(tw, "%s\t%s: %s [%s]\n", h.Scenario, h.Figure, h.Value, okWord(h.OK))
	}
	fmt.Fprintf(tw, "load generator\tworkers %.1f cpu-s in all, largest rss %.0f MB\n", r.LoadCPUS, r.LoadMaxRSS)
	for _, e := range r.Errors {
		fmt.Fprintf(tw, "error\t%s\n", e)
	}
	fmt.Fprintf(tw, "verdict\t%s\n\n", r.Verdict)
	if err := tw.Flush(); err != nil {
		return err
	}
	return r.phaseTables(w)
}

func (r *runReport) phaseTables(w io.Writer) error {
	for _, p := range r.Phases {
		if err := p.table(w, r.Traits.Acks); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	return nil
}

// table writes one phase's figures; acks says the clients ack (else the
// acks are "n/a").
func (p *phaseResult) table(w io.Writer, acks bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("== "+p.Name, "%s, %.1fs, run %s", p.Started.Format("15:04:05"), p.ElapsedS, p.Run)
	if c := p.Connect; c != nil {
		row("connect", "%d/%d in %.2fs (%.0f/s), %d failed attempts, closes %v", c.Connected, c.Clients, c.ConnectS, c.Rate, c.Failures, c.Closes)
		m := c.ConnectMS
		row("connect ms", "p50 %.1f  p90 %.1f  p99 %.1f  max %.1f", m.P50, m.P90, m.P99, m.Max)
		if c.ServerCPUMS > 0 {
			row("cpu/conn", "edge %.3f ms, Redis %.3f ms, every server process + Redis %.3f ms", c.EdgeCPUMS, c.RedisCPUMS, c.ServerCPUMS)
		}
		if c.RedisCmds != "" {
			row("redis/conn", "%s (INFO commandstats)", c.RedisCmds)
		}
	}
	if i := p.Idle; i != nil && i.GoMetrics {
		row("idle", "%d connections held %.0fs: edge RSS %.0f B/conn above the baseline (heap in use %.0f, stacks %.0f); %.2f goroutines, %.2f descriptors per conn",
			i.Connections, i.SettleS, i.RSSPerConnB, i.HeapPerConnB, i.StackPerConnB, i.GoroutinesConn, i.FDsPerConn)
	} else if i != nil {
		row("idle", "%d connections held %.0fs: edge RSS %.0f B/conn above the baseline; %.2f descriptors per conn (heap, stacks, goroutines n/a)",
			i.Connections, i.SettleS, i.RSSPerConnB, i.FDsPerConn)
	}
	if s := p.Personal; s != nil {
		personalRows(row, s, acks)
	}
	if b := p.Broadcast; b != nil {
		row("broadcast ms", "last client: median %.2f  p90 %.2f  max %.2f over %d/%d complete rounds, %d clients",
			b.Median, b.P90, b.Max, b.Complete, len(b.Rounds), b.Clients)
		row("delivered", "%d of %d, lost %d, acks sent %s", b.Delivered, b.Expected, b.Lost, acksText(b.Acks, acks))
		l := b.LatencyMS
		row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (n=%d)", l.P50, l.P90, l.P99, l.Max, l.N)
		row("cpu/notif", "%.1f µs (every server process + Redis)", b.CPUPerNot)
	}
	if s := p.Storm; s != nil {
		m := s.WelcomeMS
		row("storm", "%d clients dropped at once, reconnecting within %.1fs: %d reconnected, %s resumed, last welcome %.2fs after the drop",
			s.Clients, s.WithinS, s.Reconnected, s.resumedText(), s.LastWelcomeS)
		if !s.Resume {
			row("not recoverable", "%d events published while their clients were away (no history: nothing to resume from; not counted as lost)", s.NotRecoverable)
		}
		row("welcome ms", "after the drop: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f", m.P50, m.P90, m.P99, m.Max)
		personalRows(row, &s.Personal, acks)
	}
	for _, pp := range p.Processes {
		row("process "+pp.Name, "%s", pp.describe())
	}
	row("load generator", "workers %.2f cpu-s, coordinator %.2f cpu-s", p.LoadCPUS, p.CoordCPUS)
	row("machine", "load avg %.2f %.2f %.2f -> %.2f %.2f %.2f; busy %.1f cpu-s in %.1fs, %.1f of them in no sampled process (other work, kernel softirq)",
		p.LoadAvg[0][0], p.LoadAvg[0][1], p.LoadAvg[0][2], p.LoadAvg[1][0], p.LoadAvg[1][1], p.LoadAvg[1][2], p.MachineCPUS, p.ElapsedS, p.OtherCPUS)
	for _, f := range p.Profiles {
		row("cpu profile", "%s", f)
	}
	for _, e := range p.Errors {
		row("error", "%s", e)
	}
	row("verdict", "%s", p.Verdict)
	return tw.Flush()
}

func personalRows(row func(k, format string, a ...any), s *personalResult, acks bool) {
	row("publish", "%d at %.0f/s target, %.0f/s achieved in %.2fs, %d errors, max lag %.1f ms, drain %.2fs (%s)",
		s.Published, s.Rate, s.AchievedRate, s.PublishS, s.PublishErrors, s.PublishLagMS, s.DrainS, s.DrainEnd)
	row("delivered", "%d of %d expected, lost %d, extra %d, foreign %d, client dups %d, acks sent %s",
		s.Delivered, s.Expected, s.Lost, s.Extra, s.Foreign, s.Duplicates, acksText(s.Acks, acks))
	if len(s.LostUsers) > 0 {
		k := "lost by"
		if s.Lost == 0 {
			k = "missed by" // a storm without resume: not recoverable
		}
		row(k, "%s", strings.Join(s.LostUsers, ", "))
	}
	l := s.LatencyMS
	row("latency ms", "p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%d, publish -> receipt)", l.P50, l.P90, l.P99, l.P999, l.Max, l.N)
	if len(s.Windows) > 0 {
		p99s := make([]string, len(s.Windows))
		for i, w := range s.Windows {
			p99s[i] = "-" // nothing published in it arrived
			if w.N > 0 {
				p99s[i] = strconv.FormatFloat(w.P99, 'f', 1, 64)
			}
		}
		row("p99 per 5 s", "%s ms (by publish time)", strings.Join(p99s, " "))
	}
	row("cpu/notif", "%.1f µs every server process + Redis (Redis %.1f, edge %.1f)", s.CPUPerNotifUS, s.RedisPerNotUS, s.EdgePerNotUS)
	if s.RedisCmds != "" {
		row("redis/notif", "%s (Redis's time per command, INFO commandstats: the commands of a script, or of a transaction's exec, count in it and again by name)", s.RedisCmds)
	}
	if s.WirePerNotB > 0 {
		row("wire/notif", "%.1f bytes written by the edges per notification (frame headers included, after compression)", s.WirePerNotB)
	}
}

// acksText is a count of ack frames, or "n/a" for a protocol without acks.
func acksText(n int64, acks bool) string {
	if !acks {
		return "n/a"
	}
	return strconv.FormatInt(n, 10)
}

func (pp procResult) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] cpu %.2fs; rss MB %.1f -> %.1f", pp.Role, pp.CPUS, pp.RSSMB[0], pp.RSSMB[1])
	if pp.Goroutines != [2]float64{} {
		fmt.Fprintf(&b, "; goroutines %.0f -> %.0f", pp.Goroutines[0], pp.Goroutines[1])
	}
	if pp.FDs != [2]float64{} {
		fmt.Fprintf(&b, "; fds %.0f -> %.0f", pp.FDs[0], pp.FDs[1])
	}
	if pp.Sessions != [2]float64{} {
		fmt.Fprintf(&b, "; sessions %.0f -> %.0f", pp.Sessions[0], pp.Sessions[1])
	}
	if pp.StoreMB != [2]float64{} {
		fmt.Fprintf(&b, "; store MB %.1f -> %.1f", pp.StoreMB[0], pp.StoreMB[1])
	}
	if len(pp.Errors) > 0 {
		fmt.Fprintf(&b, " (read: %s)", strings.Join(pp.Errors, "; "))
	}
	return b.String()
}
