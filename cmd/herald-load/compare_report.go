package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// compareReport is a comparison: every target's run, and the figures the
// comparison is for, side by side with the first target's ratio to each
// other one.
type compareReport struct {
	Command  string    `json:"command"`
	Started  time.Time `json:"started"`
	ElapsedS float64   `json:"elapsed_s"`
	Targets  []string  `json:"targets"`
	Figures  []figure  `json:"figures"`
	Notes    []string  `json:"notes"`
	// OK says every target ran its scenarios to the end; a figure one of
	// them missed is a result, not a failure of the comparison.
	OK      bool         `json:"ok"`
	Verdict string       `json:"verdict"`
	Runs    []*runReport `json:"runs,omitempty"`
}

// figure is one figure of every target. Ratios are the first target's
// value over each other target's.
type figure struct {
	Key    string `json:"key"`
	Figure string `json:"figure"`
	Unit   string `json:"unit,omitempty"`
	// Better is "lower" or "higher": which way a value is better; "" where
	// a ratio judges nothing.
	Better string              `json:"better,omitempty"`
	Values map[string]*float64 `json:"values"` // null: not measured, or n/a for the target
	Text   map[string]string   `json:"text,omitempty"`
	Ratios map[string]*float64 `json:"ratios"` // null: a value missing, or a division by 0 (see ratio_text)
	RatioT map[string]string   `json:"ratio_text"`
}

// figureSpec reads one figure out of a target's run: its value, and text
// for when the value alone would mislead ("" for the plain number).
type figureSpec struct {
	key, name, unit, better string
	get                     func(r *runReport) (v *float64, text string)
}

func val(x float64) *float64 { return &x }

// phaseOf is the run's phase named name, or nil.
func (r *runReport) phaseOf(name string) *phaseResult {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// figureSpecs are the figures of a comparison of runs with settings o.
func figureSpecs(o *runFlags) []figureSpec {
	ref := fmt.Sprintf("personal %.0f/s", o.refRate)
	idle := func(r *runReport) *idleResult {
		if p := r.phaseOf("idle"); p != nil {
			return p.Idle
		}
		return nil
	}
	conn := func(r *runReport) *connectResult {
		if p := r.phaseOf("connect"); p != nil {
			return p.Connect
		}
		return nil
	}
	pers := func(r *runReport) *personalResult {
		if p := r.phaseOf(ref); p != nil {
			return p.Personal
		}
		return nil
	}
	bc := func(r *runReport) *broadcastResult {
		if p := r.phaseOf("broadcast"); p != nil {
			return p.Broadcast
		}
		return nil
	}
	st := func(r *runReport) *stormResult {
		if p := r.phaseOf("storm"); p != nil {
			return p.Storm
		}
		return nil
	}
	at := fmt.Sprintf("%s for %s to %d clients", ref, o.duration, o.clients)
	specs := []figureSpec{
		{"rss_per_idle_conn_b", fmt.Sprintf("RSS per idle connection at %d connections, above the baseline (Herald edge; centrifugo)", max(o.clients, o.idleClients)), "B", "lower",
			func(r *runReport) (*float64, string) {
				if i := idle(r); i != nil && i.Connections > 0 {
					return val(i.RSSPerConnB), ""
				}
				return nil, ""
			}},
		{"cpu_per_conn_ms", fmt.Sprintf("CPU per connection set up, every server process + Redis (%d connections)", o.clients), "ms", "lower",
			func(r *runReport) (*float64, string) {
				if c := conn(r); c != nil && c.Connected > 0 {
					return val(c.ServerCPUMS), ""
				}
				return nil, ""
			}},
		{"edge_cpu_per_conn_ms", "CPU per connection set up, the process holding the connections", "ms", "lower",
			func(r *runReport) (*float64, string) {
				if c := conn(r); c != nil && c.Connected > 0 {
					return val(c.EdgeCPUMS), ""
				}
				return nil, ""
			}},
		{"personal_p50_ms", at + ": p50 latency (publish -> receipt)", "ms", "lower",
			func(r *runReport) (*float64, string) {
				if p := pers(r); p != nil && p.LatencyMS.N > 0 {
					return val(p.LatencyMS.P50), ""
				}
				return nil, ""
			}},
		{"personal_p99_ms", at + ": p99 latency", "ms", "lower",
			func(r *runReport) (*float64, string) {
				if p := pers(r); p != nil && p.LatencyMS.N > 0 {
					return val(p.LatencyMS.P99), heldText(p)
				}
				return nil, ""
			}},
		{"personal_lost", at + ": lost", "", "lower",
			func(r *runReport) (*float64, string) {
				if p := pers(r); p != nil && p.Published > 0 {
					return val(float64(p.Lost)), fmt.Sprintf("%d of %d", p.Lost, p.Expected)
				}
				return nil, ""
			}},
		{"best_rate", fmt.Sprintf("highest personal rate held for %s with p99 < %.3g ms and 0 lost (ladder %s)", o.duration, o.sloMS, ratesText(o.rates)), "/s", "higher",
			func(r *runReport) (*float64, string) {
				if !r.ranPersonal() {
					return nil, ""
				}
				if r.BestRate == 0 {
					return val(0), "none held"
				}
				return val(r.BestRate), ""
			}},
		{"broadcast_median_ms", fmt.Sprintf("broadcast to %d clients: median time until the last client has it (%d rounds)", o.clients, o.rounds), "ms", "lower",
			func(r *runReport) (*float64, string) {
				if b := bc(r); b != nil && b.Complete > 0 {
					return val(b.Median), roundsText(b, o.rounds)
				}
				return nil, ""
			}},
		{"broadcast_max_ms", "broadcast: max time until the last client has it", "ms", "lower",
			func(r *runReport) (*float64, string) {
				if b := bc(r); b != nil && b.Complete > 0 {
					return val(b.Max), roundsText(b, o.rounds)
				}
				return nil, ""
			}},
		{"redis_us_per_notif", at + ": Redis CPU per notification", "µs", "lower",
			func(r *runReport) (*float64, string) {
				if p := pers(r); p != nil && p.Delivered > 0 {
					return val(p.RedisPerNotUS), ""
				}
				return nil, ""
			}},
		{"server_us_per_notif", at + ": CPU per notification, every server process + Redis", "µs", "lower",
			func(r *runReport) (*float64, string) {
				if p := pers(r); p != nil && p.Delivered > 0 {
					return val(p.CPUPerNotifUS), ""
				}
				return nil, ""
			}},
		{"ref_other_cpu_s", at + ": CPU the machine spent outside the sampled processes (other work, kernel; the noise)", "cpu-s", "",
			func(r *runReport) (*float64, string) {
				if p := r.phaseOf(ref); p != nil && p.MachineCPUS > 0 {
					return val(p.OtherCPUS), fmt.Sprintf("(of %.0f busy in %.0f s, load average %.1f)", p.MachineCPUS, p.ElapsedS, p.LoadAvg[0][0])
				}
				return nil, ""
			}},
		{"personal_acks", at + ": ack frames the clients sent", "", "",
			func(r *runReport) (*float64, string) {
				if !r.Traits.Acks {
					return nil, "n/a (no acks in the protocol)"
				}
				if p := pers(r); p != nil {
					return val(float64(p.Acks)), ""
				}
				return nil, ""
			}},
	}
	return append(specs, stormSpecs(o, st)...)
}

func stormSpecs(o *runFlags, st func(r *runReport) *stormResult) []figureSpec {
	name := fmt.Sprintf("reconnect storm (%d clients dropped at once, back within %s, %.0f events/s)", o.clients, o.stormWithin, o.stormRate)
	return []figureSpec{
		{"storm_reconnected", name + ": reconnected", "", "higher",
			func(r *runReport) (*float64, string) {
				if s := st(r); s != nil {
					return val(float64(s.Reconnected)), fmt.Sprintf("%d of %d", s.Reconnected, s.Clients)
				}
				return nil, ""
			}},
		{"storm_resumed", "storm: resumed from their positions", "", "higher",
			func(r *runReport) (*float64, string) {
				s := st(r)
				switch {
				case s == nil:
					return nil, ""
				case !s.Resume:
					return nil, "n/a (no history)"
				}
				return val(float64(s.Resumed)), fmt.Sprintf("%d of %d", s.Resumed, s.Reconnected)
			}},
		{"storm_lost", "storm: lost", "", "lower",
			func(r *runReport) (*float64, string) {
				s := st(r)
				switch {
				case s == nil:
					return nil, ""
				case !s.Resume:
					return nil, fmt.Sprintf("n/a (%d not recoverable)", s.NotRecoverable)
				}
				return val(float64(s.Personal.Lost)), fmt.Sprintf("%d of %d", s.Personal.Lost, s.Personal.Expected)
			}},
		{"storm_last_welcome_s", "storm: time from the drop until the last welcome (Centrifugo: connect reply)", "s", "lower",
			func(r *runReport) (*float64, string) {
				if s := st(r); s != nil && s.Reconnected > 0 {
					return val(s.LastWelcomeS), ""
				}
				return nil, ""
			}},
	}
}

func (r *runReport) ranPersonal() bool {
	for _, p := range r.Phases {
		if p.Personal != nil {
			return true
		}
	}
	return false
}

func heldText(p *personalResult) string {
	if p.Held {
		return ""
	}
	return "(missed)"
}

func roundsText(b *broadcastResult, rounds int) string {
	if b.Complete == rounds {
		return ""
	}
	return fmt.Sprintf("(%d of %d rounds complete)", b.Complete, rounds)
}

func ratesText(rates []float64) string {
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

// finish fills the figures, the notes and the verdict.
func (c *compareReport) finish(o *runFlags, failed []string) {
	c.ElapsedS = round3(time.Since(c.Started).Seconds())
	base := c.Targets[0]
	for _, sp := range figureSpecs(o) {
		f := figure{Key: sp.key, Figure: sp.name, Unit: sp.unit, Better: sp.better, Values: map[string]*float64{},
			Text: map[string]string{}, Ratios: map[string]*float64{}, RatioT: map[string]string{}}
		for _, r := range c.Runs {
			v, text := sp.get(r)
			f.Values[r.Target] = v
			if text != "" {
				f.Text[r.Target] = text
			}
		}
		for _, t := range c.Targets[1:] {
			if sp.better == "" {
				f.RatioT[t] = "" // a ratio would judge nothing
				continue
			}
			f.Ratios[t], f.RatioT[t] = ratio(f.Values[base], f.Values[t])
		}
		c.Figures = append(c.Figures, f)
	}
	c.notes(o)
	c.OK = len(failed) == 0 && len(c.Runs) == len(c.Targets)
	c.Verdict = "every target ran to the end"
	if !c.OK {
		c.Verdict = "NOT OK: " + strings.Join(failed, "; ")
	}
}

// ratio is a / b, with its text: "—" when either is missing, "both 0",
// "∞" for a / 0.
func ratio(a, b *float64) (*float64, string) {
	switch {
	case a == nil || b == nil:
		return nil, "—"
	case *a == 0 && *b == 0:
		return nil, "both 0"
	case *b == 0:
		return nil, "∞"
	}
	x := *a / *b
	return val(math.Round(x*1000) / 1000), strconv.FormatFloat(x, 'f', 2, 64) + "×"
}

// notes say what the ratios mean and what differs between the targets.
func (c *compareReport) notes(o *runFlags) {
	base := c.Targets[0]
	c.Notes = []string{
		fmt.Sprintf("Ratio = %s's figure / the other target's. In a row marked lower, below 1 is better for %s; marked higher, above 1.", base, base),
		fmt.Sprintf("The targets ran one after the other (%s) on the same machine with the same %d clients (%d idle at most), sizes and scenarios; each against one deployment that lived through its whole run.",
			strings.Join(c.Targets, ", "), o.clients, max(o.clients, o.idleClients)),
	}
	for _, r := range c.Runs {
		load := "?"
		if len(r.Phases) > 0 {
			l := r.Phases[0].LoadAvg[0]
			load = fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
		}
		c.Notes = append(c.Notes, fmt.Sprintf("%s: started %s, load average %s, verdict %s; acks %s, idempotency keys %v.",
			r.Target, r.Started.Format("15:04:05"), load, r.Verdict, r.Acks, r.Idempotency))
	}
	for _, r := range c.Runs {
		if !r.Traits.Resume {
			c.Notes = append(c.Notes, r.Target+": no history, so a reconnecting client cannot resume; what it missed while away is counted as not recoverable, not as lost.")
		}
	}
	for _, r := range c.Runs {
		if strings.HasPrefix(r.Target, "centrifugo") {
			c.Notes = append(c.Notes, "Centrifugo "+centrifugo.Version+": one node, Redis engine, every connection subscribed on the server side to its personal channel (presence on); no acks in its protocol; every publication carries the event's idempotency key (idempotency_key); a broadcast is one broadcast API call into the personal channel of every client, i.e. one publication per client, where Herald appends one event to the tenant feed.")
			break
		}
	}
}

// print writes every run's tables and the comparison (unless jsonOnly),
// then the JSON line.
func (c *compareReport) print(w io.Writer, jsonOnly bool) error {
	if !jsonOnly {
		for _, r := range c.Runs {
			if err := r.tables(w); err != nil {
				return err
			}
		}
		if err := c.table(w); err != nil {
			return err
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// cell is how target t's value of f reads: the number and unit, with a
// qualifier in brackets after it, or the text instead ("none held",
// "0 of 600000", "n/a (...)").
func (f *figure) cell(t string) string {
	v, text := f.Values[t], f.Text[t]
	if v == nil {
		if text == "" {
			return "—"
		}
		return text
	}
	s := strconv.FormatFloat(*v, 'f', decimals(*v), 64)
	if f.Unit != "" {
		s += " " + f.Unit
	}
	switch {
	case text == "":
		return s
	case strings.HasPrefix(text, "("):
		return s + " " + text
	}
	return text
}

// decimals is how many decimals a figure is shown with: three below 1,
// one below 1000, none above.
func decimals(v float64) int {
	switch a := math.Abs(v); {
	case a == 0 || a >= 1000 || a == math.Trunc(a):
		return 0
	case a < 1:
		return 3
	}
	return 1
}

// table writes the comparison as text.
func (c *compareReport) table(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append([]string{"figure"}, c.Targets...)
	for _, t := range c.Targets[1:] {
		head = append(head, c.Targets[0]+"/"+t)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, f := range c.Figures {
		row := []string{f.Figure}
		for _, t := range c.Targets {
			row = append(row, f.cell(t))
		}
		for _, t := range c.Targets[1:] {
			row = append(row, f.RatioT[t])
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	fmt.Fprintf(tw, "verdict\t%s\n", c.Verdict)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range c.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	_, err := fmt.Fprintln(w)
	return err
}

// appendMarkdown appends the comparison to path: the ratio table and the
// notes, then every target's own report.
func (c *compareReport) appendMarkdown(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("markdown report: %w", err)
	}
	fmt.Fprintf(f, "\n### Side by side, %s\n\nCommand: `%s`  \nVerdict: **%s**\n\n", c.Started.Format("2006-01-02 15:04 UTC"), c.Command, c.Verdict)
	base := c.Targets[0]
	head, rule := "| figure | better |", "|---|---|"
	for _, t := range c.Targets {
		head, rule = head+" "+t+" |", rule+"---|"
	}
	for _, t := range c.Targets[1:] {
		head, rule = head+" "+base+" / "+t+" |", rule+"---|"
	}
	fmt.Fprintf(f, "%s\n%s\n", head, rule)
	for _, fg := range c.Figures {
		line := "| " + mdEscape(fg.Figure) + " | " + fg.Better + " |"
		for _, t := range c.Targets {
			line += " " + mdEscape(fg.cell(t)) + " |"
		}
		for _, t := range c.Targets[1:] {
			if fg.RatioT[t] == "" {
				line += " |"
				continue
			}
			line += " **" + fg.RatioT[t] + "** |"
		}
		fmt.Fprintln(f, line)
	}
	fmt.Fprintln(f)
	for _, n := range c.Notes {
		fmt.Fprintln(f, "- "+mdEscape(n))
	}
	short := *c
	short.Runs = nil // each run's JSON is in its own section
	b, _ := json.Marshal(short)
	fmt.Fprintf(f, "\n<details><summary>JSON (comparison)</summary>\n\n```json\n%s\n```\n</details>\n", b)
	if err := f.Close(); err != nil {
		return fmt.Errorf("markdown report: %w", err)
	}
	for _, r := range c.Runs {
		if err := r.appendMarkdown(path); err != nil {
			return err
		}
	}
	return nil
}
