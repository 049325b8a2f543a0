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
		// the run id, then the end or more fields (--payload order)
		var run []byte
		run, r, ok = bytes.Cut(r, []byte(`"`))
		ok = ok && validRun(run) && (string(r) == "}" || len(r) > 1 && r[0] == ',' && r[len(r)-1] == '}')
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

// Payload shapes (the herald target's --payload).
const (
	payloadSmall = "small" // appendPayload's fields alone: about 45 bytes
	payloadOrder = "order" // those, then an order's fields: about 300 bytes
)

var orderItems = []string{"Wireless Mouse", "Laptop Stand", "USB-C Cable 2m", "Desk Lamp", "Notebook A5", "Coffee Beans 1kg", "Headphones", "HDMI Adapter"}

// withOrder appends to a payload (a JSON object) the fields of a
// realistic order event, about 255 bytes, their values varying with n:
// what a typical notification carries, for measuring compression.
func withOrder(p []byte, n int64) []byte {
	i := int(n & 0x7fffffff)
	b := append(p[:len(p)-1:len(p)-1], `,"order_id":"o-`...)
	b = strconv.AppendUint(b, uint64(uint32(i*2654435761)), 16)
	b = append(b, `","customer":{"id":"c-`...)
	b = strconv.AppendInt(b, int64(1000+i%9000), 10)
	b = append(b, `","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-`...)
	b = strconv.AppendInt(b, int64(10000+i*7919%90000), 10)
	b = append(b, `","name":"`...)
	b = append(b, orderItems[i%len(orderItems)]...)
	b = append(b, `","qty":`...)
	b = strconv.AppendInt(b, int64(1+i%3), 10)
	b = append(b, `,"price":`...)
	b = strconv.AppendInt(b, int64(5+i%40), 10)
	b = append(b, `.99}],"currency":"EUR","total":`...)
	b = strconv.AppendInt(b, int64(20+i%90), 10)
	b = append(b, `.47,"placed_at":"2026-12-03T10:`...)
	b = append(b, byte('0'+i/600%6), byte('0'+i/60%10), ':', byte('0'+i/10%6), byte('0'+i%10))
	return append(b, `Z"}`...)
}
