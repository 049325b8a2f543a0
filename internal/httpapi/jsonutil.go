package httpapi

import (
	"errors"
	"strings"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// unknownField reads the field out of encoding/json's
// `json: unknown field "x"`.
func unknownField(msg string) (string, bool) {
	const p = `json: unknown field "`
	if !strings.HasPrefix(msg, p) || !strings.HasSuffix(msg, `"`) {
		return "", false
	}
	return msg[len(p) : len(msg)-1], true
}
