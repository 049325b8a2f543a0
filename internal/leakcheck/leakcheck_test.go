package leakcheck_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/leakcheck"
)

// blockOn is a goroutine body with a name the reports can be checked for.
func blockOn(ch chan struct{}) { <-ch }

// startBlocked starts blockOn and returns the channel that ends it. The
// goroutine is running by the time it returns.
func startBlocked(t *testing.T) chan struct{} {
	t.Helper()
	ch, started := make(chan struct{}), make(chan struct{})
	go func() {
		close(started)
		blockOn(ch)
	}()
	<-started
	return ch
}

func TestFindReportsLeakedStack(t *testing.T) {
	ch := startBlocked(t)
	err := leakcheck.Find(leakcheck.MaxWait(20 * time.Millisecond))
	if !errors.Is(err, leakcheck.ErrLeaked) {
		t.Fatalf("Find with a blocked goroutine = %v, want ErrLeaked", err)
	}
	for _, want := range []string{"1 still running", "leakcheck_test.blockOn", "leakcheck_test.startBlocked", ".go:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("report lacks %q:\n%v", want, err)
		}
	}
	close(ch)
	if err := leakcheck.Find(); err != nil {
		t.Fatalf("Find after the goroutine ended: %v", err)
	}
}

func TestFindWaitsForGoroutinesWindingDown(t *testing.T) {
	ch := startBlocked(t)
	time.AfterFunc(50*time.Millisecond, func() { close(ch) })
	if err := leakcheck.Find(leakcheck.MaxWait(10 * time.Second)); err != nil {
		t.Fatalf("Find did not wait for a goroutine that ends by itself: %v", err)
	}
}

func TestIgnoreOptions(t *testing.T) {
	tests := []struct {
		name string
		opt  func() leakcheck.Option
	}{
		{"top function", func() leakcheck.Option {
			return leakcheck.IgnoreTopFunction("github.com/heraldrt/herald/internal/leakcheck_test.blockOn")
		}},
		{"any function", func() leakcheck.Option {
			return leakcheck.IgnoreAnyFunction("github.com/heraldrt/herald/internal/leakcheck_test.startBlocked.func1")
		}},
		{"current", leakcheck.IgnoreCurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := startBlocked(t)
			defer close(ch)
			if err := leakcheck.Find(tt.opt(), leakcheck.MaxWait(20*time.Millisecond)); err != nil {
				t.Fatalf("ignored goroutine reported: %v", err)
			}
		})
	}
}

func TestIgnoreTopFunctionIsExact(t *testing.T) {
	ch := startBlocked(t)
	defer close(ch)
	err := leakcheck.Find(leakcheck.IgnoreTopFunction("blockOn"), leakcheck.MaxWait(20*time.Millisecond))
	if !errors.Is(err, leakcheck.ErrLeaked) {
		t.Fatalf("a partial name ignored the goroutine: %v", err)
	}
}

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper()           {}
func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }

func TestVerifyNone(t *testing.T) {
	clean := &recorder{TB: t}
	leakcheck.VerifyNone(clean, leakcheck.MaxWait(20*time.Millisecond))
	if len(clean.errs) != 0 {
		t.Fatalf("VerifyNone without leaks reported %q", clean.errs)
	}

	ch := startBlocked(t)
	defer close(ch)
	leaky := &recorder{TB: t}
	leakcheck.VerifyNone(leaky, leakcheck.MaxWait(20*time.Millisecond))
	if len(leaky.errs) != 1 || !strings.Contains(leaky.errs[0], "blockOn") {
		t.Fatalf("VerifyNone with a leak reported %q, want one error naming blockOn", leaky.errs)
	}
}
