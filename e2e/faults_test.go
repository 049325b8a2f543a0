package e2e

import (
	"testing"
)

// TestSteadyTraffic is the baseline: no fault, the full mix of audiences.
func TestSteadyTraffic(t *testing.T) {
	scenario{name: "steady"}.run(t)
}
