package ratelimit

import (
	"errors"
	"fmt"
	"strconv"
)

var (
	// ErrInvalid is what every validation error matches (errors.Is).
	ErrInvalid = errors.New("invalid rules document")
	// ErrNotFound means no rules document is stored yet.
	ErrNotFound = errors.New("no rules document stored")
	// ErrConflict means the stored version changed since it was read.
	ErrConflict = errors.New("rules changed meanwhile")
	// ErrLimiterOpen means another Limiter is open in this process
	// (Sentinel's state is global).
	ErrLimiterOpen = errors.New("another ratelimit.Limiter is open in this process")
	// ErrClosed means the Limiter was closed.
	ErrClosed = errors.New("limiter closed")
	// ErrOpen is returned by Breaker.Do, at once, while the breaker is open.
	ErrOpen = errors.New("circuit breaker open")
)

// ValidationError is one problem in a rules document. It matches
// ErrInvalid.
type ValidationError struct {
	Line    int    // 1-based; 0 when unknown
	Rule    string // `"name"`, `#3` for an unnamed rule, or "" for the document
	Field   string // "interval", "match.type", "overrides" ...; "" for the whole rule
	Problem string
}

// Error reads like
// `line 7: rule "marketing-per-user": field interval: "0s" must be positive`.
func (e *ValidationError) Error() string {
	var s string
	if e.Line > 0 {
		s = "line " + strconv.Itoa(e.Line) + ": "
	}
	if e.Rule != "" {
		s += "rule " + e.Rule + ": "
	}
	if e.Field != "" {
		s += "field " + e.Field + ": "
	}
	return s + e.Problem
}

// Is makes every ValidationError match ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// ConflictError is ErrConflict with the version now stored.
type ConflictError struct {
	Expected, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("rules changed meanwhile: expected version %d, now %d", e.Expected, e.Current)
}

func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Problems returns the validation errors in err (from ParseRules or
// Store.Put), in document order.
func Problems(err error) []*ValidationError {
	var out []*ValidationError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *ValidationError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
