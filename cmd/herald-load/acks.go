package main

import (
	"fmt"
	"strings"
	"time"
)

// ackMode is how the simulated clients ack: --acks each, batched:<interval>
// or none.
type ackMode struct {
	kind  string        // ackEach, ackBatched or ackNone
	every time.Duration // batched: at most one ack per feed this often
}

const (
	// ackEach: one ack frame per notification, sent as soon as it is
	// read, as a client written from the protocol's docs does.
	ackEach = "each"
	// ackBatched: the newest notification of each feed, at most once per
	// interval after the first one not acked (the old herald bench).
	ackBatched = "batched"
	// ackNone: never ack (a client that only reads).
	ackNone = "none"
)

// parseAckMode reads "each", "none" or "batched:<interval>" (a Go
// duration, at least 1ms).
func parseAckMode(s string) (ackMode, error) {
	switch s {
	case ackEach, ackNone:
		return ackMode{kind: s}, nil
	}
	rest, ok := strings.CutPrefix(s, ackBatched+":")
	if !ok {
		return ackMode{}, fmt.Errorf("%w: --acks %q: want each, none or batched:<interval> (batched:1s)", errUsage, s)
	}
	d, err := time.ParseDuration(rest)
	if err != nil || d < time.Millisecond {
		return ackMode{}, fmt.Errorf("%w: --acks %q: the interval must be a duration of at least 1ms", errUsage, s)
	}
	return ackMode{kind: ackBatched, every: d}, nil
}

func (m ackMode) String() string {
	if m.kind == ackBatched {
		return ackBatched + ":" + m.every.String()
	}
	return m.kind
}
