package wsedge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/proto2"
)

// Protocols. A session speaks protocol 1 (JSON text frames) unless its
// client offered herald.v2 (Sec-WebSocket-Protocol), which then wins over
// herald.v1; every server frame is encoded here in the session's protocol.

// subprotocols are the ones the edge accepts, the preferred first (the
// library picks the first of these the client offered).
var subprotocols = []string{events.Protocol2, events.Protocol1}

// acceptOptions are the handshake's options: the subprotocols, and
// permessage-deflate unless it is off. Context takeover needs the edge's
// own frame writer (fc): the library would otherwise keep a deflater of
// its own per session. With it, the client's offer gets
// client_no_context_takeover added, so that the library keeps no window
// per session for client frames either (RFC 7692 section 7.1.1.1 lets the
// server ask for it).
func (e *Edge) acceptOptions(r *http.Request, fc *frameConn) *websocket.AcceptOptions {
	o := &websocket.AcceptOptions{OriginPatterns: e.cfg.OriginPatterns, Subprotocols: subprotocols}
	if e.cfg.NoCompression {
		return o
	}
	o.CompressionMode = websocket.CompressionNoContextTakeover
	o.CompressionThreshold = e.cfg.CompressionThreshold
	if e.cfg.CompressionContextTakeover && fc != nil {
		o.CompressionMode = websocket.CompressionContextTakeover
		askClientNoContextTakeover(r.Header)
	}
	return o
}

// askClientNoContextTakeover adds client_no_context_takeover to every
// permessage-deflate offer of the request that lacks it.
func askClientNoContextTakeover(h http.Header) {
	offers := h.Values("Sec-WebSocket-Extensions")
	if len(offers) == 0 {
		return
	}
	var out []string
	for _, line := range offers {
		exts := strings.Split(line, ",")
		for i, ext := range exts {
			name, _, _ := strings.Cut(ext, ";")
			if strings.TrimSpace(name) == "permessage-deflate" && !strings.Contains(ext, "client_no_context_takeover") {
				exts[i] = ext + "; client_no_context_takeover"
			}
		}
		out = append(out, strings.Join(exts, ","))
	}
	h.Del("Sec-WebSocket-Extensions")
	for _, line := range out {
		h.Add("Sec-WebSocket-Extensions", line)
	}
}

// setWire records the negotiated protocol and compression (from the
// library's handshake response) on the session and its frame writer.
func (s *session) setWire(fc *frameConn, subprotocol, extensions string) {
	s.fc = fc
	s.proto2 = subprotocol == events.Protocol2
	on, takeover := negotiatedDeflate(extensions)
	s.deflate = on
	if fc != nil {
		fc.wire = wire{binary: s.proto2, deflate: on, threshold: s.e.cfg.CompressionThreshold,
			takeover: takeover && s.e.cfg.CompressionContextTakeover}
	}
}

// protocolLabel and compressionLabel name a session's wire in metrics and
// logs.
func (s *session) protocolLabel() string {
	if s.proto2 {
		return "2"
	}
	return "1"
}

func (s *session) compressionLabel() string {
	if s.deflate {
		return "deflate"
	}
	return "none"
}

// msgType is the WebSocket message type of the session's data frames.
func (s *session) msgType() websocket.MessageType {
	if s.proto2 {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// frame encodes one of the server's fixed frames (events.Welcome, Reset,
// UnreadFrame, ErrorFrame) in the session's protocol.
func (s *session) frame(v any) []byte {
	if !s.proto2 {
		b, _ := json.Marshal(v)
		return b
	}
	switch f := v.(type) {
	case events.Welcome:
		return proto2.AppendWelcome(nil, f)
	case events.Reset:
		return proto2.AppendReset(nil, f)
	case events.UnreadFrame:
		return proto2.AppendUnread(nil, f)
	case events.ErrorFrame:
		return proto2.AppendError(nil, f)
	}
	panic(fmt.Sprintf("wsedge: no protocol 2 encoding for %T", v))
}

// pong is the reply to a ping in the session's protocol.
func (s *session) pong() []byte {
	if s.proto2 {
		return proto2.Pong
	}
	return events.PongFrame
}

// notification encodes a feed entry read from the stream (a catch-up) as
// a notification frame of the session's protocol.
func (s *session) notification(name string, e *feed.Entry) []byte {
	id := feed.NotificationID(e.Epoch, e.Seq, name)
	if s.proto2 {
		return proto2.AppendNotification(nil, id, name, e.Seq, e.Type, e.TS, e.Data)
	}
	return events.AppendNotification(nil, id, name, e.Seq, e.Type, e.TS, e.Data)
}

// Frames of the other protocol's type (contracts section 7: 1008).
var (
	errBinaryOnV1 = errors.New("binary frames are not part of protocol 1")
	errTextOnV2   = errors.New("text frames are not part of protocol 2")
)

// parseClientFrame reads a client frame of the session's protocol: a
// frame of the other protocol's type is a protocol violation (1008), as is
// one that does not parse.
func (s *session) parseClientFrame(typ websocket.MessageType, b []byte) (events.ClientFrame, error) {
	if typ != s.msgType() {
		if s.proto2 {
			return events.ClientFrame{}, errTextOnV2
		}
		return events.ClientFrame{}, errBinaryOnV1
	}
	if s.proto2 {
		return proto2.ParseClientFrame(b, events.DefaultMaxData)
	}
	return events.ParseClientFrame(b, events.DefaultMaxData)
}
