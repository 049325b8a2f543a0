package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// WebSocket protocol version 1 (contracts section 3): the frames a client
// sends and the ones the server sends. Every frame is a JSON object with a
// field "t" naming its kind. Protocol 2 (contracts section 7) has the same
// frames as MessagePack maps in binary frames; its codec is
// internal/proto2, since this package imports only the standard library.

// Subprotocols (Sec-WebSocket-Protocol). A client that offers none, or
// Protocol1, speaks protocol 1; one that offers Protocol2 gets it.
const (
	Protocol1 = "herald.v1"
	Protocol2 = "herald.v2"
)

// Client frame kinds.
const (
	FrameAck     = "ack"
	FramePing    = "ping"
	FrameResume  = "resume"
	FrameSub     = "sub"
	FrameUnsub   = "unsub"
	FrameRefresh = "refresh"
	FramePub     = "pub"
)

// Server frame kinds.
const (
	FrameWelcome      = "welcome"
	FrameNotification = "n"
	FrameReset        = "reset"
	FramePong         = "pong"
	FrameError        = "error"
	FrameUnread       = "unread"
)

// ErrBadFrame is wrapped by every client frame parse error. The edge closes
// the connection with 1008 (protocol violation) on it.
var ErrBadFrame = errors.New("bad frame")

// MaxFrameIDLen bounds ids, tokens and topic names inside client frames.
const (
	maxAckIDLen  = 512
	maxTokenLen  = 8192
	maxResumeLen = 64
)

// Position is a client's place in one feed.
type Position struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// ClientFrame is a parsed client frame; which fields are set depends on T.
type ClientFrame struct {
	T     string              `json:"t"`
	ID    string              `json:"id,omitempty"`    // ack
	Feeds map[string]Position `json:"feeds,omitempty"` // resume
	Topic string              `json:"topic,omitempty"` // sub, unsub
	Token string              `json:"token,omitempty"` // refresh
	Type  string              `json:"type,omitempty"`  // pub
	Data  json.RawMessage     `json:"data,omitempty"`  // pub
}

// ParseClientFrame parses and checks one client text frame. maxData bounds
// the data of a pub frame (0 means DefaultMaxData).
func ParseClientFrame(b []byte, maxData int) (ClientFrame, error) {
	if f, ok := fastFrame(b); ok {
		return f, nil
	}
	var f ClientFrame
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return ClientFrame{}, fmt.Errorf("%w: not a JSON frame of protocol 1: %v", ErrBadFrame, err)
	}
	if dec.More() {
		return ClientFrame{}, fmt.Errorf("%w: trailing data after the frame", ErrBadFrame)
	}
	if err := f.Check(maxData); err != nil {
		return ClientFrame{}, err
	}
	return f, nil
}

// Check checks a decoded client frame of either protocol: the fields its
// kind needs, within their limits. maxData bounds the data of a pub frame
// (0 means DefaultMaxData). The error wraps ErrBadFrame.
func (f *ClientFrame) Check(maxData int) error {
	if err := f.check(maxData); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadFrame, quoteKind(f.T), err)
	}
	return nil
}

func quoteKind(t string) string {
	if len(t) > 16 {
		t = t[:16]
	}
	return strconv.Quote(t)
}

func (f *ClientFrame) check(maxData int) error {
	switch f.T {
	case FramePing:
		return nil
	case FrameAck:
		if f.ID == "" || len(f.ID) > maxAckIDLen {
			return errors.New("needs an id")
		}
	case FrameResume:
		if len(f.Feeds) == 0 || len(f.Feeds) > maxResumeLen {
			return fmt.Errorf("needs 1 to %d feeds", maxResumeLen)
		}
		for name, p := range f.Feeds {
			if name == "" || p.Epoch == "" {
				return fmt.Errorf("feed %q needs a name and an epoch", name)
			}
		}
	case FrameSub, FrameUnsub:
		if !ValidID(f.Topic) {
			return errors.New("topic must match [A-Za-z0-9_.@-]{1,128}")
		}
	case FrameRefresh:
		if f.Token == "" || len(f.Token) > maxTokenLen {
			return errors.New("needs a token")
		}
	case FramePub:
		return f.checkPub(maxData)
	case "":
		return errors.New("has no field t")
	default:
		return errors.New("unknown frame kind")
	}
	return nil
}

func (f *ClientFrame) checkPub(maxData int) error {
	if !ValidType(f.Type) {
		return errors.New("type must match [a-z0-9_.-]{1,64}")
	}
	if maxData <= 0 {
		maxData = DefaultMaxData
	}
	if len(f.Data) > maxData {
		return fmt.Errorf("data is larger than %d bytes", maxData)
	}
	d := bytes.TrimLeft(f.Data, " \t\r\n")
	if len(d) == 0 || d[0] != '{' || !json.Valid(d) { // protocol 2's data comes unparsed
		return errors.New("data must be a JSON object")
	}
	if !utf8.Valid(f.Data) { // the decoder keeps raw messages as they came
		return errors.New("data must be valid UTF-8")
	}
	return nil
}

// Welcome is the first frame of every session.
type Welcome struct {
	T         string `json:"t"`
	Session   string `json:"session"`
	User      string `json:"user"`
	Tenant    string `json:"tenant"`
	Device    string `json:"device"`
	Heartbeat int    `json:"heartbeat"` // seconds between server pings
}

// Reset says history past the client's position in a feed is gone.
type Reset struct {
	T      string `json:"t"`
	Feed   string `json:"feed"`
	Reason string `json:"reason"`
}

// UnreadFrame tells a session its user's inbox unread count changed.
type UnreadFrame struct {
	T     string `json:"t"`
	Count int    `json:"count"`
}

// ErrorFrame reports a problem that does not end the session.
type ErrorFrame struct {
	T    string `json:"t"`
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

// Notification is a notification frame as a client decodes it.
type Notification struct {
	T    string          `json:"t"`
	ID   string          `json:"id"`
	Feed string          `json:"feed"`
	Seq  uint64          `json:"seq"`
	Type string          `json:"type"`
	TS   int64           `json:"ts"`
	Data json.RawMessage `json:"data"`
}

// PongFrame is the reply to a client ping.
var PongFrame = []byte(`{"t":"pong"}`)

// AppendNotification appends a notification frame to b without reflection.
// id, feed and typ are JSON-escaped; data must already be a JSON object.
func AppendNotification(b []byte, id, feed string, seq uint64, typ string, ts int64, data []byte) []byte {
	b = append(b, `{"t":"n","id":`...)
	b = strconv.AppendQuote(b, id)
	b = append(b, `,"feed":`...)
	b = strconv.AppendQuote(b, feed)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, typ)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

var (
	pingJSON  = []byte(`{"t":"ping"}`)
	ackPrefix = []byte(`{"t":"ack","id":"`)
	ackSuffix = []byte(`"}`)
)

// fastFrame parses the two frames clients send most, in the exact form
// every SDK writes them ({"t":"ping"} and {"t":"ack","id":"..."} with a
// plain id), without the JSON decoder. Anything else, including the same
// frames with other spacing or escapes, takes the full parse.
func fastFrame(b []byte) (ClientFrame, bool) {
	if bytes.Equal(b, pingJSON) {
		return ClientFrame{T: FramePing}, true
	}
	if len(b) < len(ackPrefix)+len(ackSuffix)+1 || !bytes.HasPrefix(b, ackPrefix) || !bytes.HasSuffix(b, ackSuffix) {
		return ClientFrame{}, false
	}
	id := b[len(ackPrefix) : len(b)-len(ackSuffix)]
	if len(id) > maxAckIDLen {
		return ClientFrame{}, false
	}
	for _, c := range id {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return ClientFrame{}, false
		}
	}
	return ClientFrame{T: FrameAck, ID: string(id)}, true
}

var notificationPrefix = []byte(`{"t":"n","id":"`)

// ParseNotification parses a server frame into a Notification (any frame
// kind: T tells which). A notification in the exact form AppendNotification
// writes, with plain ASCII strings, is read without the JSON decoder; every
// other frame, or the same frame with escapes or other spacing, takes the
// full decode, with the same result. Data is a copy: b may be reused.
func ParseNotification(b []byte) (Notification, error) {
	if n, ok := fastNotification(b); ok {
		return n, nil
	}
	var n Notification
	if err := json.Unmarshal(b, &n); err != nil {
		return Notification{}, fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	return n, nil
}

func fastNotification(b []byte) (Notification, bool) {
	if !bytes.HasPrefix(b, notificationPrefix) || b[len(b)-1] != '}' {
		return Notification{}, false
	}
	r := b[len(notificationPrefix) : len(b)-1]
	var n Notification
	var ok bool
	if n.ID, r, ok = plainString(r, `,"feed":"`); !ok {
		return Notification{}, false
	}
	if n.Feed, r, ok = plainString(r, `,"seq":`); !ok {
		return Notification{}, false
	}
	if n.Seq, r, ok = plainUint(r, `,"type":"`); !ok {
		return Notification{}, false
	}
	if n.Type, r, ok = plainString(r, `,"ts":`); !ok {
		return Notification{}, false
	}
	neg := len(r) > 0 && r[0] == '-'
	if neg {
		r = r[1:]
	}
	ts, r, ok := plainUint(r, `,"data":`)
	if !ok || ts > 1<<62 {
		return Notification{}, false
	}
	n.TS = int64(ts)
	if neg {
		n.TS = -n.TS
	}
	// r is the data object: exactly an object, no space around it.
	if len(r) < 2 || r[0] != '{' || r[len(r)-1] != '}' || !json.Valid(r) {
		return Notification{}, false
	}
	n.T = FrameNotification
	n.Data = bytes.Clone(r)
	return n, true
}

// plainString reads a JSON string body of printable ASCII without escapes
// up to its closing quote, which must be followed by next. It returns the
// rest after next.
func plainString(b []byte, next string) (string, []byte, bool) {
	for i, c := range b {
		if c == '"' {
			if !bytes.HasPrefix(b[i+1:], []byte(next)) {
				return "", nil, false
			}
			return string(b[:i]), b[i+1+len(next):], true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", nil, false
		}
	}
	return "", nil, false
}

// plainUint reads a JSON unsigned integer (no leading zeros, at most 19
// digits) followed by next, and returns the rest after next.
func plainUint(b []byte, next string) (uint64, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
	}
	if i == 0 || i > 19 || (i > 1 && b[0] == '0') || !bytes.HasPrefix(b[i:], []byte(next)) {
		return 0, nil, false
	}
	return v, b[i+len(next):], true
}
