package archtest

import (
	"slices"
	"testing"
)

// TestArchitecture checks every rule against the module as it is.
func TestArchitecture(t *testing.T) {
	g, err := loadGraph()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(g.own, func(p *pkg) bool { return g.rel(p.ImportPath) == "internal/archtest" }) {
		t.Fatalf("go list did not list internal/archtest itself; it listed %d module packages", len(g.own))
	}
	for _, p := range g.own {
		if p.Error != nil { // its imports may be incomplete
			t.Errorf("cannot check %s: %s", g.rel(p.ImportPath), p.Error.Err)
		}
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			for _, violation := range r.check(g) {
				t.Error(violation)
			}
		})
	}
}
