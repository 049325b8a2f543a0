package centrifugo

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Frame is what one WebSocket message from Centrifugo holds. With the JSON
// protocol a message carries one or more replies separated by '\n': the
// reply to a command (its id set), a push (a publication in a channel, ...)
// or a ping ("{}").
type Frame struct {
	// Pings is how many server pings the frame held; answer each with one
	// Pong.
	Pings int

	// Connect is the connect reply, if the frame held it (its ID is the
	// connect command's).
	Connect *ConnectReply

	// Publications are the frame's publications in order: first those the
	// connect reply recovered (Recovered set), then pushed ones.
	Publications []Publication

	// Errors are error replies, a refused connect among them (its ID is the
	// connect command's; Centrifugo then closes the connection).
	Errors []ReplyError

	// Other counts replies this package does not read: joins, leaves,
	// unsubscribes, messages, replies to other commands.
	Other int
}

// ConnectReply is Centrifugo's answer to the connect command.
type ConnectReply struct {
	ID      uint32 // the connect command's id
	Client  string // the connection's id on the server
	Version string // the server's version
	// Ping is the server's ping interval in seconds, and Pong whether it
	// expects pongs.
	Ping uint32
	Pong bool
	// Expires says the token expires, in TTL seconds, and must be refreshed.
	Expires bool
	TTL     uint32
	// Subs are the server-side subscriptions made on connect: the personal
	// channel.
	Subs map[string]SubState
}

// SubState is a server-side subscription as the connect reply describes it.
type SubState struct {
	// Recoverable says the channel keeps history the client can recover
	// from; Position is then the stream's current position.
	Recoverable bool
	Position
	// WasRecovering says the client asked to recover, and Recovered whether
	// every missed publication came back (false: too many, or the epoch
	// changed).
	WasRecovering bool
	Recovered     bool
}

// Publication is a message published into a channel.
type Publication struct {
	Channel string
	// Data is the publication's data as published: a JSON value. It may
	// share the parsed message's memory.
	Data []byte
	// Offset is the publication's place in the channel's history stream; 0
	// when the channel keeps no history.
	Offset uint64
	// Recovered says the publication came from history in the connect
	// reply, not live.
	Recovered bool
}

// wire forms of the replies, as the JSON protocol spells them.
type (
	wireReply struct {
		ID      uint32       `json:"id"`
		Error   *ReplyError  `json:"error"`
		Push    *wirePush    `json:"push"`
		Connect *wireConnect `json:"connect"`
	}
	wirePush struct {
		Channel string   `json:"channel"`
		Pub     *wirePub `json:"pub"`
	}
	wirePub struct {
		Data   json.RawMessage `json:"data"`
		Offset uint64          `json:"offset"`
	}
	wireConnect struct {
		Client  string             `json:"client"`
		Version string             `json:"version"`
		Expires bool               `json:"expires"`
		TTL     uint32             `json:"ttl"`
		Ping    uint32             `json:"ping"`
		Pong    bool               `json:"pong"`
		Subs    map[string]wireSub `json:"subs"`
	}
	wireSub struct {
		Recoverable   bool      `json:"recoverable"`
		Epoch         string    `json:"epoch"`
		Offset        uint64    `json:"offset"`
		Recovered     bool      `json:"recovered"`
		WasRecovering bool      `json:"was_recovering"`
		Publications  []wirePub `json:"publications"`
	}
)

// Parse reads one WebSocket message from Centrifugo into f, replacing what
// f held (its Publications slice is reused). The publications' Data may
// point into msg. On a malformed reply it returns an error and f holds the
// replies before it.
func (f *Frame) Parse(msg []byte) error {
	*f = Frame{Publications: f.Publications[:0]}
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
			continue
		case bytes.Equal(line, []byte(Pong)):
			f.Pings++
			continue
		}
		if pub, ok := parsePub(line); ok {
			f.Publications = append(f.Publications, pub)
			continue
		}
		var r wireReply
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("parse centrifugo reply %.80q: %w", line, err)
		}
		f.add(&r)
	}
	return nil
}

// add records one decoded reply.
func (f *Frame) add(r *wireReply) {
	switch {
	case r.Error != nil:
		r.Error.ID = r.ID
		f.Errors = append(f.Errors, *r.Error)
	case r.Connect != nil:
		f.addConnect(r.ID, r.Connect)
	case r.Push != nil && r.Push.Pub != nil:
		f.Publications = append(f.Publications, Publication{
			Channel: r.Push.Channel, Data: r.Push.Pub.Data, Offset: r.Push.Pub.Offset,
		})
	default:
		f.Other++
	}
}

func (f *Frame) addConnect(id uint32, c *wireConnect) {
	reply := &ConnectReply{
		ID: id, Client: c.Client, Version: c.Version,
		Ping: c.Ping, Pong: c.Pong, Expires: c.Expires, TTL: c.TTL,
		Subs: make(map[string]SubState, len(c.Subs)),
	}
	for ch, s := range c.Subs {
		reply.Subs[ch] = SubState{
			Recoverable: s.Recoverable, Position: Position{Offset: s.Offset, Epoch: s.Epoch},
			WasRecovering: s.WasRecovering, Recovered: s.Recovered,
		}
		for _, p := range s.Publications {
			f.Publications = append(f.Publications, Publication{
				Channel: ch, Data: p.Data, Offset: p.Offset, Recovered: true,
			})
		}
	}
	f.Connect = reply
}

const (
	pushPrefix = `{"push":{"channel":"`
	pubInfix   = `","pub":{"data":`
	pushSuffix = `}}}`
	offsetKey  = `,"offset":`
)

// parsePub reads the common live publication without a JSON decoder:
//
//	{"push":{"channel":"<ch>","pub":{"data":<data>}}}
//	{"push":{"channel":"<ch>","pub":{"data":<data>,"offset":<n>}}}
//
// Centrifugo writes the fields in this order (the protocol's field
// numbers). Anything else (a channel with escapes or beyond ASCII, more
// publication fields) is left to the decoder. Data must be one JSON value,
// so it cannot end in `,"offset":<n>` itself. A publication costs about a
// tenth of what the decoder takes.
func parsePub(line []byte) (Publication, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(pushPrefix))
	if !ok {
		return Publication{}, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 || !plainASCII(rest[:end]) {
		return Publication{}, false
	}
	channel := rest[:end]
	rest, ok = bytes.CutPrefix(rest[end:], []byte(pubInfix))
	if !ok {
		return Publication{}, false
	}
	data, ok := bytes.CutSuffix(rest, []byte(pushSuffix))
	if !ok {
		return Publication{}, false
	}
	var offset uint64
	if i := bytes.LastIndex(data, []byte(offsetKey)); i >= 0 {
		if n, ok := parseUint(data[i+len(offsetKey):]); ok {
			data, offset = data[:i], n
		}
	}
	if !json.Valid(data) {
		return Publication{}, false
	}
	return Publication{Channel: string(channel), Data: data, Offset: offset}, true
}

// plainASCII reports whether b is printable ASCII without a backslash,
// which a JSON string holds as it is.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// parseUint parses b, decimal digits only.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
