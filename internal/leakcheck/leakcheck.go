package leakcheck

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// ErrLeaked is what Find's error wraps when goroutines are left running.
var ErrLeaked = errors.New("leakcheck: goroutines leaked")

// defaultMaxWait is how long goroutines get to finish before they count as
// leaked.
const defaultMaxWait = 5 * time.Second

// knownFunctions are goroutines that are not leaks wherever they appear in a
// stack: the test runner itself and the runtime's signal handling.
var knownFunctions = []string{
	"testing.tRunner",
	"testing.(*M).Run",
	"testing.runFuzzing",
	"testing.runFuzzTests",
	"testing.(*F).Fuzz",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
}

// Option changes what Find waits for and ignores.
type Option func(*config)

type config struct {
	maxWait time.Duration
	ignore  []func(goroutine) bool
}

// MaxWait sets how long goroutines get to finish before they count as
// leaked. The default is 5s.
func MaxWait(d time.Duration) Option { return func(c *config) { c.maxWait = d } }

// IgnoreTopFunction ignores goroutines whose innermost function is fn, a
// fully qualified name as stacks print it ("net/http.(*Server).Serve").
func IgnoreTopFunction(fn string) Option {
	return ignore(func(g goroutine) bool { return g.topFunction() == fn })
}

// IgnoreAnyFunction ignores goroutines with fn anywhere in their stack.
func IgnoreAnyFunction(fn string) Option {
	return ignore(func(g goroutine) bool { return g.hasFunction(fn) })
}

// IgnoreCurrent ignores every goroutine running when IgnoreCurrent is
// called, for packages that start long-lived goroutines before the tests.
func IgnoreCurrent() Option {
	ids := map[int]bool{}
	for _, g := range parse(dump()) {
		ids[g.id] = true
	}
	return ignore(func(g goroutine) bool { return ids[g.id] })
}

func ignore(f func(goroutine) bool) Option {
	return func(c *config) { c.ignore = append(c.ignore, f) }
}

// Find waits until no goroutine is left but the caller's and ignored ones,
// up to MaxWait, and returns an error wrapping ErrLeaked with the stacks of
// those still running.
func Find(opts ...Option) error {
	c := config{maxWait: defaultMaxWait}
	for _, f := range knownFunctions {
		IgnoreAnyFunction(f)(&c)
	}
	for _, opt := range opts {
		opt(&c)
	}
	deadline := time.Now().Add(c.maxWait)
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		leaked := c.leaked()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return leakError(leaked, c.maxWait)
		}
		time.Sleep(delay) // polling the goroutine list: there is nothing to wait on
	}
}

// leaked returns the goroutines that are neither the caller nor ignored.
func (c *config) leaked() []goroutine {
	all := parse(dump())
	var out []goroutine
	for _, g := range all[1:] { // the first one is the caller
		if !c.ignored(g) {
			out = append(out, g)
		}
	}
	return out
}

func (c *config) ignored(g goroutine) bool {
	for _, f := range c.ignore {
		if f(g) {
			return true
		}
	}
	return false
}

func leakError(leaked []goroutine, waited time.Duration) error {
	stacks := make([]string, len(leaked))
	for i, g := range leaked {
		stacks[i] = g.stack
	}
	return fmt.Errorf("%w: %d still running after %v:\n\n%s",
		ErrLeaked, len(leaked), waited, strings.Join(stacks, "\n\n"))
}

// VerifyNone fails tb if goroutines other than tb's own and ignored ones are
// still running after MaxWait. Call it at the end of a test, or defer it;
// not from parallel tests, whose goroutines it would report.
func VerifyNone(tb testing.TB, opts ...Option) {
	tb.Helper()
	if err := Find(opts...); err != nil {
		tb.Error(err)
	}
}

// Main runs the package's tests and then, if they passed, checks for leaked
// goroutines; it exits with a failure status if it finds any. Call it from
// TestMain.
func Main(m *testing.M, opts ...Option) {
	code := m.Run()
	if code == 0 {
		if err := Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
