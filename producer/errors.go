package producer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/heraldrt/herald/internal/replicas"
)

// ErrNilEvent is returned when Publish or a batch message is given a nil
// event.
var ErrNilEvent = errors.New("nil event")

// ErrEmptyMessage is returned for a zero [Message] in a batch (one built
// without [Event] or [Envelope]).
var ErrEmptyMessage = errors.New("empty message")

// BatchError says which message of a batch failed. Err is the message's own
// error: a validation error (wrapping a *events.ValidationError), or the
// Redis error of its XADD.
type BatchError struct {
	Index  int    // position of the message in the batch
	Type   string // its event type, "" if unknown
	Stream string // the stream it was sent to; "" if it was never sent
	Err    error
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "publish batch: message %d", e.Index)
	if e.Type != "" {
		fmt.Fprintf(&b, " (%s)", e.Type)
	}
	if e.Stream != "" {
		fmt.Fprintf(&b, " to %s", e.Stream)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	return b.String()
}

func (e *BatchError) Unwrap() error { return e.Err }

// ErrNotReplicated is wrapped by Publish's and PublishBatch's error under
// WithReplicaAcks when fewer replicas than asked had the entries in time.
// The entries may be stored: send them again with the same idempotency
// keys.
var ErrNotReplicated = replicas.ErrNotReplicated
