package proto2

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/heraldrt/herald/events"
)

// MessagePack encoders: only the types the frames use (map, str, bin,
// unsigned and signed integers), each in its shortest form.

func appendMapHeader(b []byte, n int) []byte {
	if n < 16 {
		return append(b, 0x80|byte(n))
	}
	return binary.BigEndian.AppendUint16(append(b, 0xde), uint16(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
	}
	return append(b, s...)
}

func appendBin(b, p []byte) []byte {
	n := len(p)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(n))
	}
	return append(b, p...)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v)) // negative fixint
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}

// Precomputed keys and kinds: a one-byte header and the name.
var (
	keyT    = appendStr(nil, "t")
	kindN   = appendStr(nil, events.FrameNotification)
	keyID   = appendStr(nil, "id")
	keyFeed = appendStr(nil, "feed")
	keySeq  = appendStr(nil, "seq")
	keyType = appendStr(nil, "type")
	keyTS   = appendStr(nil, "ts")
	keyData = appendStr(nil, "data")
)

// AppendNotification appends a notification frame: the map
// {t:"n", id, feed, seq, type, ts, data} with data a bin holding the
// producer's JSON bytes as they are.
func AppendNotification(b []byte, id, feed string, seq uint64, typ string, ts int64, data []byte) []byte {
	b = appendMapHeader(b, 7)
	b = append(append(b, keyT...), kindN...)
	b = appendStr(append(b, keyID...), id)
	b = appendStr(append(b, keyFeed...), feed)
	b = appendUint(append(b, keySeq...), seq)
	b = appendStr(append(b, keyType...), typ)
	b = appendInt(append(b, keyTS...), ts)
	return appendBin(append(b, keyData...), data)
}

// Pong is the reply to a client ping: {t:"pong"}.
var Pong = appendStr(appendStr(appendMapHeader(nil, 1), "t"), events.FramePong)

// Ping is a client's ping frame: {t:"ping"}.
var Ping = appendStr(appendStr(appendMapHeader(nil, 1), "t"), events.FramePing)

// field is one key and value of a frame being written.
type field struct {
	key   string
	str   string
	num   int64
	isNum bool
}

func appendFields(b []byte, fs ...field) []byte {
	b = appendMapHeader(b, len(fs))
	for _, f := range fs {
		b = appendStr(b, f.key)
		if f.isNum {
			b = appendInt(b, f.num)
		} else {
			b = appendStr(b, f.str)
		}
	}
	return b
}

func str(k, v string) field       { return field{key: k, str: v} }
func num(k string, v int64) field { return field{key: k, num: v, isNum: true} }

// AppendWelcome appends a welcome frame.
func AppendWelcome(b []byte, w events.Welcome) []byte {
	return appendFields(b, str("t", w.T), str("session", w.Session), str("user", w.User),
		str("tenant", w.Tenant), str("device", w.Device), num("heartbeat", int64(w.Heartbeat)))
}

// AppendReset appends a reset frame.
func AppendReset(b []byte, r events.Reset) []byte {
	return appendFields(b, str("t", r.T), str("feed", r.Feed), str("reason", r.Reason))
}

// AppendUnread appends an unread frame.
func AppendUnread(b []byte, u events.UnreadFrame) []byte {
	return appendFields(b, str("t", u.T), num("count", int64(u.Count)))
}

// AppendError appends an error frame.
func AppendError(b []byte, e events.ErrorFrame) []byte {
	return appendFields(b, str("t", e.T), str("code", e.Code), str("msg", e.Msg))
}

// AppendAck appends a client's ack frame, {t:"ack", id}: the form the
// decoder's fast path reads.
func AppendAck(b []byte, id string) []byte {
	return appendStr(append(appendStr(appendStr(appendMapHeader(b, 2), "t"), events.FrameAck), keyID...), id)
}

// AppendClientFrame appends any client frame, with protocol 1's fields
// (those left empty are left out, as protocol 1's omitempty does); a pub
// frame's data goes as a bin. Feeds of a resume frame are written in name
// order.
func AppendClientFrame(b []byte, f events.ClientFrame) []byte {
	n := 1
	for _, set := range []bool{f.ID != "", len(f.Feeds) > 0, f.Topic != "", f.Token != "", f.Type != "", len(f.Data) > 0} {
		if set {
			n++
		}
	}
	b = appendStr(appendStr(appendMapHeader(b, n), "t"), f.T)
	for _, kv := range [][2]string{{"id", f.ID}, {"topic", f.Topic}, {"token", f.Token}, {"type", f.Type}} {
		if kv[1] != "" {
			b = appendStr(appendStr(b, kv[0]), kv[1])
		}
	}
	if len(f.Feeds) > 0 {
		b = appendMapHeader(appendStr(b, "feeds"), len(f.Feeds))
		names := make([]string, 0, len(f.Feeds))
		for name := range f.Feeds {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			p := f.Feeds[name]
			b = appendMapHeader(appendStr(b, name), 2)
			b = appendStr(appendStr(b, "epoch"), p.Epoch)
			b = appendUint(appendStr(b, "seq"), p.Seq)
		}
	}
	if len(f.Data) > 0 {
		b = appendBin(append(b, keyData...), f.Data)
	}
	return b
}
