package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestPlainLinesOffATerminal(t *testing.T) {
	var b bytes.Buffer
	p := New(&b, 10, "events")
	if p.tty {
		t.Fatal("a buffer is not a terminal")
	}
	p.Update(3) // within the first interval: nothing yet
	if b.Len() != 0 {
		t.Fatalf("drew %q before the interval passed", b.String())
	}
	p.last = time.Now().Add(-time.Hour)
	p.Update(5)
	p.Finish(10)
	out := b.String()
	if !strings.Contains(out, "5/10 events") {
		t.Fatalf("output %q does not report 5/10 events", out)
	}
}

func TestPerSecond(t *testing.T) {
	if got := PerSecond(10, 2*time.Second); got != 5 {
		t.Fatalf("PerSecond = %v, want 5", got)
	}
	if got := PerSecond(10, 0); got != 0 {
		t.Fatalf("PerSecond over no time = %v, want 0", got)
	}
}
