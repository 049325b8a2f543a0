package feed

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of this package.
var (
	ErrBadPayload = errors.New("feed: malformed channel payload")
	ErrBadID      = errors.New("feed: malformed notification id")
	ErrBadEntry   = errors.New("feed: malformed feed entry")
)

// Entry is one notification in a feed, as read from the stream or decoded
// from a channel payload.
type Entry struct {
	Epoch  string
	Seq    uint64
	Type   string
	TS     int64  // unix ms
	Exp    int64  // unix ms after which it is neither pushed nor replayed; 0 = never
	Device string // "" = every device of the feed's audience
	Data   []byte // a JSON object
}

// Expired reports whether the entry's ttl has passed at nowMs.
func (e *Entry) Expired(nowMs int64) bool { return e.Exp != 0 && nowMs >= e.Exp }

// For reports whether the entry is meant for a device.
func (e *Entry) For(device string) bool { return e.Device == "" || e.Device == device }

// AppendPayload appends the channel payload encoding of e to b:
// epoch, seq, type, ts, exp and device, each followed by '\n', then data.
// append.lua writes the same format.
func (e *Entry) AppendPayload(b []byte) []byte {
	b = append(b, e.Epoch...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, '\n')
	b = append(b, e.Type...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, e.TS, 10)
	b = append(b, '\n')
	if e.Exp != 0 {
		b = strconv.AppendInt(b, e.Exp, 10)
	}
	b = append(b, '\n')
	b = append(b, e.Device...)
	b = append(b, '\n')
	return append(b, e.Data...)
}

// DecodePayload parses a channel payload. Data aliases p.
func DecodePayload(p []byte) (Entry, error) {
	var parts [6][]byte
	rest := p
	for i := range parts {
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return Entry{}, fmt.Errorf("%w: %d header lines, want 6", ErrBadPayload, i)
		}
		parts[i], rest = rest[:j], rest[j+1:]
	}
	e := Entry{Epoch: string(parts[0]), Type: string(parts[2]), Device: string(parts[5]), Data: rest}
	var err error
	if e.Seq, err = strconv.ParseUint(string(parts[1]), 10, 64); err != nil || e.Seq == 0 {
		return Entry{}, fmt.Errorf("%w: seq %q", ErrBadPayload, parts[1])
	}
	if e.TS, err = strconv.ParseInt(string(parts[3]), 10, 64); err != nil {
		return Entry{}, fmt.Errorf("%w: ts %q", ErrBadPayload, parts[3])
	}
	if len(parts[4]) > 0 {
		if e.Exp, err = strconv.ParseInt(string(parts[4]), 10, 64); err != nil {
			return Entry{}, fmt.Errorf("%w: exp %q", ErrBadPayload, parts[4])
		}
	}
	if e.Epoch == "" || e.Type == "" {
		return Entry{}, fmt.Errorf("%w: empty epoch or type", ErrBadPayload)
	}
	return e, nil
}

// fromStream builds an Entry from a feed stream entry ("<seq>-0" and its
// fields).
func fromStream(epoch, id string, values map[string]any) (Entry, error) {
	ms, _, ok := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(ms, 10, 64)
	if !ok || err != nil {
		return Entry{}, fmt.Errorf("%w: id %q", ErrBadEntry, id)
	}
	e := Entry{Epoch: epoch, Seq: seq}
	e.Type, _ = values["type"].(string)
	data, _ := values["data"].(string)
	e.Data = []byte(data)
	e.Device, _ = values["device"].(string)
	if e.TS, err = intField(values, "ts"); err != nil {
		return Entry{}, err
	}
	if e.Exp, err = intField(values, "exp"); err != nil {
		return Entry{}, err
	}
	return e, nil
}

func intField(values map[string]any, name string) (int64, error) {
	s, _ := values[name].(string)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q", ErrBadEntry, name, s)
	}
	return n, nil
}

// NotificationID is the opaque id a client acks: "<epoch>-<seq>-<feed>",
// where feed is the client-visible feed name.
func NotificationID(epoch string, seq uint64, feed string) string {
	return epoch + "-" + strconv.FormatUint(seq, 10) + "-" + feed
}

// AppendNotificationID is NotificationID appended to b without allocating.
func AppendNotificationID(b []byte, epoch string, seq uint64, feed string) []byte {
	b = append(b, epoch...)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '-')
	return append(b, feed...)
}

// ParseNotificationID reads an id written by NotificationID.
func ParseNotificationID(id string) (epoch string, seq uint64, feed string, err error) {
	epoch, rest, ok1 := strings.Cut(id, "-")
	num, feed, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || epoch == "" || feed == "" {
		return "", 0, "", fmt.Errorf("%w: %q", ErrBadID, clip(id))
	}
	seq, err = strconv.ParseUint(num, 10, 64)
	if err != nil || seq == 0 {
		return "", 0, "", fmt.Errorf("%w: %q", ErrBadID, clip(id))
	}
	return epoch, seq, feed, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
