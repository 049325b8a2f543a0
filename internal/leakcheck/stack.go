package leakcheck

import (
	"fmt"
	"runtime"
	"strings"
)

// goroutine is one entry of a goroutine dump.
type goroutine struct {
	id    int
	funcs []string // function names, innermost first, without arguments
	stack string   // the entry as the runtime printed it
}

// topFunction returns the innermost function, or "" if none was printed.
func (g goroutine) topFunction() string {
	if len(g.funcs) == 0 {
		return ""
	}
	return g.funcs[0]
}

func (g goroutine) hasFunction(name string) bool {
	for _, f := range g.funcs {
		if f == name {
			return true
		}
	}
	return false
}

// dump returns the stacks of all goroutines; the calling goroutine is first.
func dump() string {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

// parse splits a goroutine dump into goroutines.
func parse(dump string) []goroutine {
	var gs []goroutine
	for entry := range strings.SplitSeq(strings.TrimSpace(dump), "\n\n") {
		var g goroutine
		if _, err := fmt.Sscanf(entry, "goroutine %d", &g.id); err != nil {
			continue
		}
		g.stack = entry
		lines := strings.Split(entry, "\n")
		for _, line := range lines[1:] {
			if name, ok := functionName(line); ok {
				g.funcs = append(g.funcs, name)
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// functionName returns the function a stack line calls, without its
// arguments, and false for file lines, "created by" lines and elisions.
func functionName(line string) (string, bool) {
	if line == "" || strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "created by ") ||
		strings.HasPrefix(line, "...") {
		return "", false
	}
	if i := strings.LastIndexByte(line, '('); i > 0 && strings.HasSuffix(line, ")") {
		line = line[:i]
	}
	return line, true
}
