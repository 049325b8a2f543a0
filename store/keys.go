package store

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Key layout. Every key starts with a two-byte namespace; each identifier
// after it is length-prefixed (uvarint length, then the bytes), so ids that
// contain '/', ':' or any other byte can never collide or spill into a
// neighbour's prefix range.
//
//	a/ lp(tenant) lp(user) lp(device) lp(feed)   ACK position (value: ack codec)
//	d/ lp(tenant) lp(user) lp(device) lp(feed)   dirty index: not yet flushed to Redis
//	                                             (value: a copy of the ACK value)
//	s/ lp(id)                                    live session (value: JSON)
//	c/ be64(closedAt) lp(id)                     recently closed session (value: JSON)
//
// be64(closedAt) is the UnixNano time with its sign bit flipped, big-endian,
// so byte order is time order for times before and after 1970 alike.
var (
	prefixAck     = []byte("a/")
	prefixDirty   = []byte("d/")
	prefixLive    = []byte("s/")
	prefixClosed  = []byte("c/")
	errKeyCorrupt = errors.New("corrupt key")
)

// appendLP appends a uvarint length followed by s.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readLP reads one length-prefixed string from b and returns the rest.
func readLP(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	// Reject overlong (non-minimal) lengths: one id, one encoding.
	if w <= 0 || w != uvarintLen(n) || n > uint64(len(b)-w) {
		return "", nil, errKeyCorrupt
	}
	end := w + int(n)
	return string(b[w:end]), b[end:], nil
}

func uvarintLen(n uint64) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}

// devicePrefix is the common prefix of every ACK (or dirty) key of one device.
func devicePrefix(ns []byte, tenant, user, device string) []byte {
	b := make([]byte, 0, len(ns)+len(tenant)+len(user)+len(device)+3)
	b = append(b, ns...)
	b = appendLP(b, tenant)
	b = appendLP(b, user)
	return appendLP(b, device)
}

// positionKey is the key of one feed position in namespace ns (prefixAck or
// prefixDirty).
func positionKey(ns []byte, tenant, user, device, feed string) []byte {
	id := posID{tenant, user, device, feed}
	return appendPositionKey(make([]byte, 0, positionKeyLen(ns, id)), ns, id)
}

// posID names one position: the part of AckPosition that forms its key.
type posID struct {
	Tenant, User, Device, Feed string
}

// appendPositionKey appends the key of id in namespace ns to b.
func appendPositionKey(b, ns []byte, id posID) []byte {
	b = append(b, ns...)
	b = appendLP(b, id.Tenant)
	b = appendLP(b, id.User)
	b = appendLP(b, id.Device)
	return appendLP(b, id.Feed)
}

// positionKeyLen is the length of the key of id in namespace ns.
func positionKeyLen(ns []byte, id posID) int {
	n := len(ns)
	for _, s := range [...]string{id.Tenant, id.User, id.Device, id.Feed} {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

// parsePositionKey decodes a key made by positionKey in namespace ns.
func parsePositionKey(ns, key []byte) (posID, error) {
	if len(key) < len(ns) || string(key[:len(ns)]) != string(ns) {
		return posID{}, errKeyCorrupt
	}
	rest := key[len(ns):]
	var id posID
	var err error
	for _, f := range []*string{&id.Tenant, &id.User, &id.Device, &id.Feed} {
		if *f, rest, err = readLP(rest); err != nil {
			return posID{}, err
		}
	}
	if len(rest) != 0 {
		return posID{}, errKeyCorrupt
	}
	return id, nil
}

func liveKey(id string) []byte {
	return appendLP(append([]byte(nil), prefixLive...), id)
}

// closedTimePrefix is the closed-session key prefix up to (and including) the
// timestamp; every key for a session closed at t starts with it.
func closedTimePrefix(t time.Time) []byte {
	b := append(make([]byte, 0, len(prefixClosed)+8), prefixClosed...)
	return binary.BigEndian.AppendUint64(b, orderedNanos(t))
}

func closedKey(t time.Time, id string) []byte {
	return appendLP(closedTimePrefix(t), id)
}

// orderedNanos maps t to a uint64 whose unsigned order is t's order.
func orderedNanos(t time.Time) uint64 {
	return uint64(t.UnixNano()) ^ (1 << 63)
}

// prefixEnd returns the smallest key greater than every key starting with p:
// the UpperBound of a prefix scan. It is nil (no bound) when p is all 0xff.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != math.MaxUint8 {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
