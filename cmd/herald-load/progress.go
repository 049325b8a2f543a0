package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress reports how far a phase of a known size is: on a terminal a bar redrawn in place about ten times a second,
// otherwise a plain line every few seconds, so logs stay readable. Not safe
// for concurrent use: one loop owns it.
type progress struct {
	w      io.Writer
	tty    bool
	noun   string // what is counted, e.g. "events"
	total  int
	start  time.Time
	last   time.Time
	every  time.Duration
	drawn  bool
	barLen int
}

func newProgress(w io.Writer, total int, noun string) *progress {
	now := time.Now()
	p := &progress{w: w, tty: isTerminal(w), noun: noun, total: total, start: now, last: now, barLen: 30}
	p.every = 2 * time.Second
	if p.tty {
		p.every = 100 * time.Millisecond
	}
	return p
}

// update reports done of total, at most once per interval.
func (p *progress) update(done int) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.draw(done, now)
}

// finish draws the final state on a terminal and ends the bar's line.
func (p *progress) finish(done int) {
	if !p.tty || !p.drawn {
		return
	}
	p.draw(done, time.Now())
	fmt.Fprintln(p.w)
}

func (p *progress) draw(done int, now time.Time) {
	p.drawn = true
	elapsed := now.Sub(p.start)
	rate := perSecond(done, elapsed)
	pct := 100 * float64(done) / float64(max(p.total, 1))
	if !p.tty {
		fmt.Fprintf(p.w, "%d/%d %s (%.0f%%) in %s, %.0f/s\n", done, p.total, p.noun, pct, elapsed.Round(time.Second), rate)
		return
	}
	fill := min(p.barLen, p.barLen*done/max(p.total, 1))
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", p.barLen-fill)
	eta := "--"
	if rate > 0 && done < p.total {
		eta = time.Duration(float64(p.total-done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	// \r returns to the start of the line, \x1b[K clears what is left of it.
	fmt.Fprintf(p.w, "\r[%s] %3.0f%%  %d/%d %s  %.0f/s  eta %s\x1b[K", bar, pct, done, p.total, p.noun, rate, eta)
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// isTerminal reports whether w is a terminal: a character device that is
// not /dev/null.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
