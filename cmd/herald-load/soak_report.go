package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// soakReport is the result of a soak.
type soakReport struct {
	Target   string       `json:"target"`
	Label    string       `json:"label,omitempty"`
	Command  string       `json:"command"`
	Started  time.Time    `json:"started"`
	ElapsedS float64      `json:"elapsed_s"`
	Cycles   int          `json:"cycles"`
	Clients  int          `json:"clients"`
	Workers  int          `json:"workers"`
	Acks     string       `json:"acks"`
	Limits   soakLimits   `json:"limits"`
	Baseline soakSample   `json:"baseline"`
	Samples  []soakSample `json:"samples"`
	Last     soakSample   `json:"last_wave"`
	Verdict  soakVerdict  `json:"verdict"`
	Errors   []string     `json:"errors,omitempty"`
}

func (r *soakReport) note(msg string) {
	if len(r.Errors) < 12 && !slices.Contains(r.Errors, msg) {
		r.Errors = append(r.Errors, msg)
	}
}

func (r *soakReport) finish() {
	r.ElapsedS = round3(time.Since(r.Started).Seconds())
	r.Verdict = judgeSoak(r.Baseline, r.Samples, r.Last, r.Limits)
	if len(r.Errors) > 0 && len(r.Samples) < r.Cycles {
		r.Verdict.OK = false
		r.Verdict.Reasons = append(r.Verdict.Reasons, "the soak did not finish: "+r.Errors[0])
	}
}

func (r *soakReport) verdictText() string {
	if r.Verdict.OK {
		text := "OK"
		if len(r.Samples) < 3 {
			text += " (RSS growth not judged: it needs 3 cycles)"
		}
		return text
	}
	return "NOT OK: " + strings.Join(r.Verdict.Reasons, "; ")
}

func (r *soakReport) print(w io.Writer, jsonOnly bool) error {
	if !jsonOnly {
		if err := r.table(w); err != nil {
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

// table writes one row per cycle: what the clients did and the edge after.
func (r *soakReport) table(w io.Writer) error {
	fmt.Fprintf(w, "soak of %s: %d cycles of %d clients in %d workers (half killed, half reset), acks %s\n",
		r.Target, r.Cycles, r.Clients, r.Workers, r.Acks)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "cycle\tconnected\treceived\tkilled\treset\tsettle s\tsessions\tfds\tgoroutines\trss MB\tloaded rss MB\tstore MB\t")
	row := func(name string, s soakSample) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t\n",
			name, s.Connected, s.Received, s.Killed, s.Reset, s.SettleS, s.Sessions, s.FDs, s.Goroutines, s.RSSMB, s.LoadedRSSMB, s.StoreMB)
	}
	row("baseline", r.Baseline)
	for _, s := range r.Samples {
		row(fmt.Sprint(s.Cycle), s)
	}
	row("last wave", r.Last)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "descriptors allowed after a cycle: %.0f (baseline %.0f, +1%% or %.0f)\n", r.Verdict.FDLimit, r.Baseline.FDs, r.Limits.FDSlack)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	_, err := fmt.Fprintf(w, "verdict: %s\n", r.verdictText())
	return err
}

func (r *soakReport) appendMarkdown(path string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("markdown report: %w", err)
	}
	defer f.Close()
	title := "herald-load soak"
	if r.Label != "" {
		title = r.Label
	}
	fmt.Fprintf(f, "\n### %s, %s\n\nCommand: `%s`  \nVerdict: **%s**\n\n```\n", title, r.Started.Format("2006-01-02 15:04 UTC"), r.Command, r.verdictText())
	if err := r.table(f); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	_, err = fmt.Fprintf(f, "```\n\n<details><summary>JSON</summary>\n\n```json\n%s\n```\n</details>\n", b)
	return err
}
