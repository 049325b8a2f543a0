package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar reports how far a long run of a known size is (herald publish
// --count, herald-load's phases): on a terminal a bar redrawn in place about ten times a second,
// otherwise a plain line every few seconds, so logs stay readable. Not safe
// for concurrent use: one loop owns it.
type Bar struct {
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

// New returns a Bar for total things called noun, written to w.
func New(w io.Writer, total int, noun string) *Bar {
	now := time.Now()
	p := &Bar{w: w, tty: IsTerminal(w), noun: noun, total: total, start: now, last: now, barLen: 30}
	p.every = 2 * time.Second
	if p.tty {
		p.every = 100 * time.Millisecond
	}
	return p
}

// Update reports done of total, at most once per interval.
func (p *Bar) Update(done int) {
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.draw(done, now)
}

// Finish draws the final state on a terminal and ends the bar's line.
func (p *Bar) Finish(done int) {
	if !p.tty || !p.drawn {
		return
	}
	p.draw(done, time.Now())
	fmt.Fprintln(p.w)
}

func (p *Bar) draw(done int, now time.Time) {
	p.drawn = true
	elapsed := now.Sub(p.start)
	rate := PerSecond(done, elapsed)
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

// PerSecond is n per second over d (0 for no time).
func PerSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// IsTerminal reports whether w is a terminal: a character device that is
// not /dev/null.
func IsTerminal(w any) bool {
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
