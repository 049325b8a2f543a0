package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ackCodecVersion is the first byte of every encoded ACK value.
const ackCodecVersion = 1

// Flag bits of an encoded ACK value.
const (
	flagDirty  = 1 << 0 // legacy: not yet flushed to Redis (see storedAck)
	flagNoTime = 1 << 1 // UpdatedAt is the zero time (and is not encoded)
	knownFlags = flagDirty | flagNoTime
)

var errValueCorrupt = errors.New("corrupt value")

// storedAck is what an ACK key's value holds: the position without its key
// parts. Dirty is a legacy flag: stores before the in-memory dirty mirror set
// it on positions not yet flushed to Redis. It is still decoded, but the
// dirty index ("d/") alone says what is unflushed and new values leave it
// unset.
type storedAck struct {
	Epoch     string
	Seq       uint64
	UpdatedAt time.Time
	Dirty     bool
}

// encodeAck encodes v compactly:
//
//	version(1) flags(1) uvarint(seq) [varint(updatedAt unix nanos)] uvarint(len(epoch)) epoch
func encodeAck(v storedAck) []byte {
	return appendAck(make([]byte, 0, 2+binary.MaxVarintLen64*3+len(v.Epoch)), v)
}

// appendAck appends the encoding of v (see encodeAck) to b.
func appendAck(b []byte, v storedAck) []byte {
	var flags byte
	if v.Dirty {
		flags |= flagDirty
	}
	if v.UpdatedAt.IsZero() {
		flags |= flagNoTime
	}
	b = append(b, ackCodecVersion, flags)
	b = binary.AppendUvarint(b, v.Seq)
	if !v.UpdatedAt.IsZero() {
		b = binary.AppendVarint(b, v.UpdatedAt.UnixNano())
	}
	return appendLP(b, v.Epoch)
}

// decodeAck is the inverse of encodeAck. It rejects unknown versions, unknown
// flags and trailing bytes.
func decodeAck(b []byte) (storedAck, error) {
	if len(b) < 2 {
		return storedAck{}, fmt.Errorf("decode ack: %w: short", errValueCorrupt)
	}
	if b[0] != ackCodecVersion {
		return storedAck{}, fmt.Errorf("decode ack: %w: version %d", errValueCorrupt, b[0])
	}
	flags := b[1]
	if flags&^knownFlags != 0 {
		return storedAck{}, fmt.Errorf("decode ack: %w: flags %#x", errValueCorrupt, flags)
	}
	v := storedAck{Dirty: flags&flagDirty != 0}
	rest := b[2:]
	var w int
	if v.Seq, w = binary.Uvarint(rest); w <= 0 {
		return storedAck{}, fmt.Errorf("decode ack: %w: seq", errValueCorrupt)
	}
	rest = rest[w:]
	if flags&flagNoTime == 0 {
		var ns int64
		if ns, w = binary.Varint(rest); w <= 0 {
			return storedAck{}, fmt.Errorf("decode ack: %w: time", errValueCorrupt)
		}
		v.UpdatedAt = time.Unix(0, ns).UTC()
		rest = rest[w:]
	}
	var err error
	if v.Epoch, rest, err = readLP(rest); err != nil {
		return storedAck{}, fmt.Errorf("decode ack: %w: epoch", errValueCorrupt)
	}
	if len(rest) != 0 {
		return storedAck{}, fmt.Errorf("decode ack: %w: %d trailing bytes", errValueCorrupt, len(rest))
	}
	return v, nil
}

// encodeSession encodes s as JSON: sessions are small, written once or twice
// in their life, and readable JSON helps when inspecting a store by hand.
func encodeSession(s Session) ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode session %q: %w", s.ID, err)
	}
	return b, nil
}

func decodeSession(b []byte) (Session, error) {
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return Session{}, fmt.Errorf("decode session: %w: %w", errValueCorrupt, err)
	}
	if s.ID == "" {
		return Session{}, fmt.Errorf("decode session: %w: empty id", errValueCorrupt)
	}
	return s, nil
}
