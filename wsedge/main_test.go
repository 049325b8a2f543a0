package wsedge_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
)

// TestMain fails the run if goroutines outlive the tests: every Edge must
// stop its pools, loops and close handshakes on Shutdown, and every
// session's reader must end with its connection.
func TestMain(m *testing.M) { leakcheck.Main(m) }
