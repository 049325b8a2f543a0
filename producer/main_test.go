package producer_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/redis/go-redis/v9"
)

// quiet drops go-redis's own log lines: the tests kill servers on purpose,
// and the pool logs every failed redial.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{})
	code := m.Run()
	if err := closeBenchServer(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := leakcheck.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
