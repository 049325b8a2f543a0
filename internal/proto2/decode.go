package proto2

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/heraldrt/herald/events"
	"github.com/vmihailenco/msgpack/v5"
)

// isMap reports whether c starts a MessagePack map (fixmap, map16, map32).
func isMap(c byte) bool { return c&0xf0 == 0x80 || c == 0xde || c == 0xdf }

// decode decodes b, which must be exactly one MessagePack map, into v by
// protocol 1's field names (the json tags of the events types).
// client (for a client frame) refuses fields v does not have and
// negative numbers.
func decode(b []byte, v any, client bool) error {
	if len(b) == 0 || !isMap(b[0]) {
		return fmt.Errorf("%w: not a MessagePack map", events.ErrBadFrame)
	}
	if err := checkShape(b, client); err != nil {
		return err
	}
	r := bytes.NewReader(b)
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r) // a bytes.Reader is a ByteScanner: the decoder reads it unbuffered
	dec.SetCustomStructTag("json")
	dec.DisallowUnknownFields(client)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: not a MessagePack frame of protocol 2: %v", events.ErrBadFrame, err)
	}
	if r.Len() > 0 {
		return fmt.Errorf("%w: trailing data after the frame", events.ErrBadFrame)
	}
	return nil
}

// ParseClientFrame parses and checks one client frame of protocol 2 (the
// payload of a binary WebSocket frame). maxData bounds the data of a pub
// frame (0 means events.DefaultMaxData). Every error wraps
// events.ErrBadFrame; fields it does not know are errors, as in protocol 1.
// The frame holds copies: b may be reused.
func ParseClientFrame(b []byte, maxData int) (events.ClientFrame, error) {
	if f, ok := fastFrame(b); ok {
		return f, nil
	}
	var f events.ClientFrame
	if err := decode(b, &f, true); err != nil {
		return events.ClientFrame{}, err
	}
	if err := f.Check(maxData); err != nil {
		return events.ClientFrame{}, err
	}
	return f, nil
}

// ackPrefix is an ack frame up to its id's string header.
var ackPrefix = AppendAck(nil, "")[:len(AppendAck(nil, ""))-1]

// fastFrame reads the two frames clients send most, ping and ack, in the
// exact form Ping and AppendAck write them, without the decoder; anything
// else takes the full parse (with the same result).
func fastFrame(b []byte) (events.ClientFrame, bool) {
	if bytes.Equal(b, Ping) {
		return events.ClientFrame{T: events.FramePing}, true
	}
	rest, ok := bytes.CutPrefix(b, ackPrefix)
	if !ok || len(rest) == 0 {
		return events.ClientFrame{}, false
	}
	var n int
	switch c := rest[0]; {
	case c&0xe0 == 0xa0: // fixstr
		n, rest = int(c&0x1f), rest[1:]
	case c == 0xd9 && len(rest) >= 2: // str8
		n, rest = int(rest[1]), rest[2:]
	case c == 0xda && len(rest) >= 3: // str16
		n, rest = int(rest[1])<<8|int(rest[2]), rest[3:]
	default:
		return events.ClientFrame{}, false
	}
	if n != len(rest) {
		return events.ClientFrame{}, false
	}
	f := events.ClientFrame{T: events.FrameAck, ID: string(rest)}
	if f.Check(0) != nil {
		return events.ClientFrame{}, false // the full parse says why
	}
	return f, true
}

// ParseServerFrame parses a server frame of protocol 2 into a
// Notification (any frame kind: T tells which; fields of other kinds are
// skipped). Data is a copy: b may be reused.
func ParseServerFrame(b []byte) (events.Notification, error) {
	var n events.Notification
	if err := decode(b, &n, false); err != nil {
		return events.Notification{}, err
	}
	return n, nil
}

// ToJSON rewrites one frame of protocol 2, of either direction, as the
// same frame of protocol 1 (a JSON object; its data, a bin of JSON, is put
// in as it is). It lets a client written for protocol 1 read protocol 2:
// the tests do. Keys come out in name order.
func ToJSON(b []byte) ([]byte, error) {
	m := make(map[string]any)
	if err := decode(b, &m, false); err != nil {
		return nil, err
	}
	if d, ok := m["data"]; ok {
		raw, ok := d.([]byte)
		if !ok || !json.Valid(raw) {
			return nil, fmt.Errorf("%w: data is not a bin of JSON", events.ErrBadFrame)
		}
		m["data"] = json.RawMessage(raw)
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", events.ErrBadFrame, err)
	}
	return out, nil
}
