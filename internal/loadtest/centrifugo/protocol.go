package centrifugo

import (
	"encoding/json"
)

// Pong is the frame a client sends for each server ping (an empty reply,
// "{}"), and only for those: Centrifugo closes a connection that sends an
// unasked-for pong (3503, bad request) or none within PongTimeout (3012, no
// pong). A client must answer pings only when its connect reply said
// Pong is true, which it does with the defaults here.
const Pong = "{}"

// Position is where a client stands in a channel's history stream: the
// offset of the last publication it has and the stream's epoch, which
// changes when the stream was lost (Redis flushed, or the history expired).
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// ConnectCommand returns the first frame a client sends after the
// WebSocket opens: the JSON protocol's connect command with the given id
// (any id above 0; the reply carries it back) and connection token.
//
// With positions the client asks Centrifugo to recover what it missed in
// those channels since then, from history. This is how a server-side
// subscription (the personal channel) resumes: the client cannot subscribe
// to it itself, so it names it in the connect command's subs map with
// recover, offset and epoch, and Centrifugo puts the missed publications
// into the connect reply (SubState.Recovered tells whether it could).
//
//	{"id":1,"connect":{"token":"<jwt>"}}
//	{"id":1,"connect":{"token":"<jwt>","subs":{"personal:#u1":{"recover":true,"offset":7,"epoch":"xyzw"}}}}
func ConnectCommand(id uint32, token string, positions map[string]Position) []byte {
	type subRequest struct {
		Recover bool   `json:"recover"`
		Offset  uint64 `json:"offset"`
		Epoch   string `json:"epoch"`
	}
	type connect struct {
		Token string                `json:"token"`
		Subs  map[string]subRequest `json:"subs,omitempty"`
	}
	cmd := struct {
		ID      uint32  `json:"id"`
		Connect connect `json:"connect"`
	}{ID: id, Connect: connect{Token: token}}
	if len(positions) > 0 {
		cmd.Connect.Subs = make(map[string]subRequest, len(positions))
		for ch, p := range positions {
			cmd.Connect.Subs[ch] = subRequest{Recover: true, Offset: p.Offset, Epoch: p.Epoch}
		}
	}
	b, _ := json.Marshal(cmd) // strings, numbers and bools always marshal
	return b
}

// ShouldReconnect reports whether a client whose connection Centrifugo
// closed with the WebSocket close code should connect again, by
// Centrifugo's rule: 3000-3499, 4000-4499 and 5000 up mean reconnect
// (3001 shutdown, 3012 no pong, ...); 3500-3999 and 4500-4999 are terminal
// (3500 invalid token, 3501 bad request, ...). Codes below 3000 are the
// transport's: a client reconnects.
func ShouldReconnect(code int) bool {
	switch {
	case code >= 3500 && code < 4000, code >= 4500 && code < 5000:
		return false
	default:
		return true
	}
}
