package store

import (
	"fmt"
	"log/slog"
)

// pebbleLogger adapts *slog.Logger to pebble's Logger so that pebble never
// writes to stderr or the standard log package.
type pebbleLogger struct {
	log *slog.Logger
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), attrComponent, "pebble")
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...), attrComponent, "pebble")
}

// Fatalf is called by pebble on invariant violations (for example on-disk
// corruption found in the background); pebble expects it not to return. It
// logs, then panics so the stack reaches the process's crash output.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, attrComponent, "pebble", "fatal", true)
	panic("pebble: " + msg)
}

// Log attribute keys.
const (
	attrComponent = "component"
	attrErr       = "err"
	attrDir       = "dir"
	attrPositions = "positions"
)
