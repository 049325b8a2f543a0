package leakcheck

import (
	"slices"
	"testing"
)

const sampleDump = `goroutine 19 [running]:
x.TestX(0x120763954248?)
	/tmp/gs/main_test.go:8 +0x9d
testing.tRunner(0x120763954248, 0x592e08)
	/usr/local/go/src/testing/testing.go:2036 +0xea
created by testing.(*T).Run in goroutine 1
	/usr/local/go/src/testing/testing.go:2101 +0x4c5

goroutine 20 [chan receive, 3 minutes]:
x.(*worker).loop(...)
	/tmp/gs/main_test.go:5
x.run({0x584fb6?, 0x0?})
	/tmp/gs/main_test.go:12 +0x66
...additional frames elided...
created by x.TestX in goroutine 19
	/tmp/gs/main_test.go:5 +0x66
`

func TestParse(t *testing.T) {
	gs := parse(sampleDump)
	if len(gs) != 2 {
		t.Fatalf("parsed %d goroutines, want 2", len(gs))
	}
	tests := []struct {
		id    int
		funcs []string
	}{
		{19, []string{"x.TestX", "testing.tRunner"}},
		{20, []string{"x.(*worker).loop", "x.run"}},
	}
	for i, tt := range tests {
		g := gs[i]
		if g.id != tt.id || !slices.Equal(g.funcs, tt.funcs) {
			t.Errorf("goroutine %d = id %d funcs %q, want id %d funcs %q", i, g.id, g.funcs, tt.id, tt.funcs)
		}
	}
	if top := gs[1].topFunction(); top != "x.(*worker).loop" {
		t.Errorf("topFunction = %q", top)
	}
	if !gs[0].hasFunction("testing.tRunner") || gs[0].hasFunction("testing.(*T).Run") {
		t.Errorf("hasFunction must match frames only, not the created-by line")
	}
}
