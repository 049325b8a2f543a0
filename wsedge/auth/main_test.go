package auth_test

import (
	"testing"

	"github.com/heraldrt/herald/internal/leakcheck"
)

// TestMain fails the run if a goroutine outlives the tests: every Verifier
// with a JWKS URL must stop its refresher on Close.
func TestMain(m *testing.M) { leakcheck.Main(m) }
