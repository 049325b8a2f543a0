package events

import (
	"errors"
	"fmt"
)

// Sentinel errors. A [*ValidationError] wraps one of them, so callers can
// test the kind of problem with errors.Is and still read the field.
var (
	ErrMissing  = errors.New("missing")
	ErrInvalid  = errors.New("invalid")
	ErrTooLarge = errors.New("too large")
	ErrUnknown  = errors.New("unknown")
)

// ValidationError says which field of an entry broke the contract and how.
type ValidationError struct {
	Field   string // the stream entry field, e.g. "to" or "data"
	Problem string // what was wrong, lowercase, e.g. "must be a JSON object"
	Err     error  // one of ErrMissing, ErrInvalid, ErrTooLarge, ErrUnknown
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("field %q: %s", e.Field, e.Problem)
}

func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Problem: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

func missing(field string) *ValidationError {
	return &ValidationError{Field: field, Problem: "is required", Err: ErrMissing}
}

// FieldOf returns the field named by a validation error in err's chain, or "".
func FieldOf(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Field
	}
	return ""
}
