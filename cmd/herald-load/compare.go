package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const compareHelp = `Runs the scenarios of 'herald-load run' against several targets, one
after the other, on this machine, with the same clients and sizes, and
reports every figure side by side and as a ratio of the first target's to
each other's. Each target runs the whole scenario list against one
deployment of its own that lives through it: Herald's is the one the flags
name (scripts/loadtest.sh starts it once); each Centrifugo variant starts
its own node and redis-server in Open and stops them after its run.

  herald              Herald: acks each notification (--acks), resumes
  centrifugo          Centrifugo v6, personal channels without history: no
                      acks, a storm only reconnects (what it misses is
                      "not recoverable")
  centrifugo-history  Centrifugo v6, personal channels with history
                      (recovery on reconnect): no acks

--ref-rate (10000/s by default) is measured for every target, after its
ladder if the ladder stopped below it. Figures: RSS per idle connection,
CPU per connection set up, p50/p99 and loss at --ref-rate, the highest rate
held, broadcast time until the last client, Redis CPU per notification,
the reconnect storm. The ratio table goes to stdout and to --md (before
each target's own report), the whole comparison into the JSON line.`

// compareFlags are the settings of a comparison: a run's, and the targets.
type compareFlags struct {
	*runFlags
	targets []string
}

func parseCompareFlags(args []string) (*compareFlags, error) {
	o := &compareFlags{runFlags: &runFlags{tf: make(map[string]targetFlags)}}
	var list string
	f := newFlags("compare", compareHelp)
	f.String(&list, "targets", "herald,centrifugo,centrifugo-history", "the targets, in the order they run; the first is the ratios' numerator ("+targetNames()+")")
	raw := o.define(f, 10000)
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if f.NArg() > 0 {
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	}
	if err := o.finish(raw); err != nil {
		return nil, err
	}
	o.targets = splitList(list)
	if len(o.targets) < 2 {
		return nil, fmt.Errorf("%w: --targets %q: name two or more", errUsage, list)
	}
	for i, name := range o.targets {
		if _, err := lookupTarget(name); err != nil {
			return nil, err
		}
		for _, other := range o.targets[:i] {
			if other == name {
				return nil, fmt.Errorf("%w: --targets names %s twice", errUsage, name)
			}
		}
	}
	o.target = o.targets[0]
	return o, o.check()
}

func runCompare(ctx context.Context, args []string) error {
	setGCPercent(400) // as run: the publisher's garbage is short-lived
	return compare(ctx, args, os.Stdout, os.Stderr)
}

// compare runs every target in turn and reports them side by side. A
// target that misses its figures is a result; one whose run fails (or
// that cannot start) is an error, after the others have run.
func compare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseCompareFlags(args)
	if err != nil {
		return err
	}
	ts := make([]Target, len(o.targets))
	for i, name := range o.targets {
		if ts[i], err = o.tf[name].open(o.common()); err != nil {
			return err
		}
	}
	// Slow preparation (building centrifugo) first, while nothing is measured.
	for _, t := range ts {
		if p, ok := t.(preparer); ok {
			if err := p.Prepare(ctx); err != nil {
				return fmt.Errorf("prepare %s: %w", t.Name(), err)
			}
		}
	}
	cr := &compareReport{Command: commandLine("compare", args), Started: time.Now().UTC(), Targets: o.targets}
	var failed []string
	base := o.sourceBase
	for i, t := range ts {
		if i > 0 {
			sleepUntil(ctx, time.Now().Add(o.stepGap)) // let the machine settle
		}
		if ctx.Err() != nil {
			failed = append(failed, t.Name()+": "+ctx.Err().Error())
			break
		}
		fmt.Fprintf(stderr, "== compare: %s (%d of %d)\n", t.Name(), i+1, len(ts))
		ot := o.forTarget(t.Name(), base)
		rep, next, err := runTarget(ctx, ot, t, cr.Command, stderr)
		base = next
		cr.Runs = append(cr.Runs, rep)
		if err != nil {
			failed = append(failed, t.Name()+": "+err.Error())
		}
	}
	cr.finish(o.runFlags, failed)
	if err := cr.print(stdout, o.json); err != nil {
		return err
	}
	if o.md != "" {
		if err := cr.appendMarkdown(o.md); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("compare: %s", strings.Join(failed, "; "))
	}
	return nil
}

// forTarget is the run's settings for one target: its own run id, label
// and profile directory, dialling from base on.
func (o *compareFlags) forTarget(name, base string) *runFlags {
	ot := *o.runFlags
	ot.target, ot.run, ot.sourceBase = name, newRunID(), base
	ot.label = "herald-load compare: " + name
	if o.label != "" {
		ot.label = o.label + ": " + name
	}
	if o.profileDir != "" {
		ot.profileDir = filepath.Join(o.profileDir, name)
	}
	return &ot
}
