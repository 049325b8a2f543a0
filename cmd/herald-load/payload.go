package main

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// payload is the data of every load event: publish time in unix µs, the
// event's number (personal: the user is n mod users; broadcast: the
// round) and the phase's run id. The target carries it to the client
// untouched.
type payload struct {
	T int64  `json:"t"`
	N int64  `json:"n"`
	R string `json:"r"`
}

// appendPayload appends {"t":<us>,"n":<n>,"r":"<run>"}; run is [a-z0-9].
func appendPayload(b []byte, tUS, n int64, run string) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, tUS, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"r":"`...)
	b = append(b, run...)
	return append(b, `"}`...)
}

// idempotencyKey is event n's key in the phase run: unique per event, so
// the dispatcher's dedup costs what it costs a real producer.
func idempotencyKey(run string, n int64) string {
	return run + "-" + strconv.FormatInt(n, 10)
}

// parsePayload reads what appendPayload wrote without the JSON decoder
// (workers read every notification of a run), and anything else with it.
func parsePayload(b []byte) (payload, bool) {
	var d payload
	r, ok := bytes.CutPrefix(b, []byte(`{"t":`))
	if ok {
		d.T, r, ok = cutInt(r, `,"n":`)
	}
	if ok {
		d.N, r, ok = cutInt(r, `,"r":"`)
	}
	if ok {
		var run []byte
		run, ok = bytes.CutSuffix(r, []byte(`"}`))
		ok = ok && validRun(run)
		d.R = string(run)
	}
	if ok {
		return d, true
	}
	d = payload{}
	return d, json.Unmarshal(b, &d) == nil
}

// validRun reports whether a run id is non-empty [a-z0-9].
func validRun(run []byte) bool {
	return len(run) > 0 && bytes.IndexFunc(run, func(c rune) bool {
		return !('a' <= c && c <= 'z' || '0' <= c && c <= '9')
	}) < 0
}

// cutInt reads a decimal int64 followed by sep.
func cutInt(b []byte, sep string) (int64, []byte, bool) {
	i := bytes.Index(b, []byte(sep))
	if i <= 0 {
		return 0, nil, false
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return v, b[i+len(sep):], err == nil
}
