package wsedge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/heraldrt/herald/wsedge"
)

// wireOpts is what a test client offers in its handshake.
type wireOpts struct {
	protocols []string
	deflate   websocket.CompressionMode // the library's: it inflates server frames, deflates its own
	threshold int                       // the client's own; 0: the library's
}

// dialWire dials with the offers of o and returns the client and the
// extension the edge answered with.
func dialWire(t *testing.T, rawURL, token string, o wireOpts) (*client, string) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		Subprotocols: o.protocols, CompressionMode: o.deflate, CompressionThreshold: o.threshold})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, conn: c}, resp.Header.Get("Sec-WebSocket-Extensions")
}

// readRaw reads one frame as it came: its type and payload.
func (c *client) readRaw() (websocket.MessageType, []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.conn.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return typ, b
}

func (c *client) sendV2(f events.ClientFrame) {
	c.t.Helper()
	if err := c.conn.Write(context.Background(), websocket.MessageBinary, proto2.AppendClientFrame(nil, f)); err != nil {
		c.t.Fatal(err)
	}
}

const (
	noTakeover = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	takeover   = "permessage-deflate; client_no_context_takeover"
)

// TestNegotiation: which protocol and which compression a handshake gets.
func TestNegotiation(t *testing.T) {
	v := newEnv(t)
	plain := v.startEdge("", nil)
	off := v.startEdge("", func(c *wsedge.Config) { c.NoCompression = true })
	keep := v.startEdge("", func(c *wsedge.Config) { c.CompressionContextTakeover = true })
	for _, tt := range []struct {
		name      string
		e         *edge
		o         wireOpts
		protocol  string
		extension string
	}{
		{"nothing offered", plain, wireOpts{}, "", ""},
		{"herald.v1", plain, wireOpts{protocols: []string{"herald.v1"}}, "herald.v1", ""},
		{"herald.v2", plain, wireOpts{protocols: []string{"herald.v2"}}, "herald.v2", ""},
		{"both, v1 first", plain, wireOpts{protocols: []string{"herald.v1", "herald.v2"}}, "herald.v2", ""},
		{"both, v2 first", plain, wireOpts{protocols: []string{"herald.v2", "herald.v1"}}, "herald.v2", ""},
		{"an unknown one", plain, wireOpts{protocols: []string{"mqtt"}}, "", ""},
		{"deflate", plain, wireOpts{deflate: websocket.CompressionNoContextTakeover}, "", noTakeover},
		{"deflate, client keeps context", plain, wireOpts{deflate: websocket.CompressionContextTakeover}, "", noTakeover},
		{"v2 and deflate", plain, wireOpts{protocols: []string{"herald.v2"}, deflate: websocket.CompressionNoContextTakeover}, "herald.v2", noTakeover},
		{"deflate offered, edge has it off", off, wireOpts{deflate: websocket.CompressionNoContextTakeover}, "", ""},
		{"context takeover setting", keep, wireOpts{protocols: []string{"herald.v2"}, deflate: websocket.CompressionContextTakeover}, "herald.v2", takeover},
		{"context takeover setting, client asks for none", keep, wireOpts{deflate: websocket.CompressionNoContextTakeover}, "", noTakeover},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, ext := dialWire(t, tt.e.url, v.token("neg", "d"+fmt.Sprint(time.Now().UnixNano()), time.Hour), tt.o)
			if p := c.conn.Subprotocol(); p != tt.protocol || ext != tt.extension {
				t.Fatalf("got protocol %q, extension %q; want %q, %q", p, ext, tt.protocol, tt.extension)
			}
			typ, b := c.readRaw()
			wantType := websocket.MessageText
			if tt.protocol == "herald.v2" {
				wantType = websocket.MessageBinary
				if b2, err := proto2.ToJSON(b); err != nil {
					t.Fatalf("welcome %x: %v", b, err)
				} else {
					b = b2
				}
			}
			var w events.Welcome
			if typ != wantType || json.Unmarshal(b, &w) != nil || w.T != "welcome" || w.User != "neg" {
				t.Fatalf("first frame %v %q, want a welcome in a %v frame", typ, b, wantType)
			}
		})
	}
	c, _ := dialWire(t, plain.url, v.token("neg", "live", time.Hour), wireOpts{protocols: []string{"herald.v2"}, deflate: websocket.CompressionNoContextTakeover})
	c.next()
	if n := metric(t, plain.Collectors(), "herald_edge_sessions_by_wire", "protocol", "2", "compression", "deflate"); n != 1 {
		t.Fatalf("herald_edge_sessions_by_wire{protocol=2,compression=deflate} = %v, want 1", n)
	}
}

// TestProtocol2Session: a whole session in protocol 2, with and without
// compression and context takeover: notifications small and large (above
// the threshold: deflated) carry the producer's JSON bytes unchanged as a
// bin, pings get pongs, acks (deflated too) move the device's position,
// and a bad ack gets an error frame in protocol 2.
func TestProtocol2Session(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mode     websocket.CompressionMode
		takeover bool
	}{
		{"uncompressed", websocket.CompressionDisabled, false},
		{"deflate", websocket.CompressionNoContextTakeover, false},
		{"deflate with context takeover", websocket.CompressionContextTakeover, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t)
			e := v.startEdge("", func(c *wsedge.Config) { c.CompressionContextTakeover = tt.takeover })
			tok := v.token("amy", "phone", time.Hour)
			o := wireOpts{protocols: []string{"herald.v1", "herald.v2"}, deflate: tt.mode, threshold: 1}
			c, _ := dialWire(t, e.url, tok, o)
			if f := c.next(); f["t"] != "welcome" {
				t.Fatalf("first frame %v", f)
			}
			payloads := []string{`{"n":1}`, `{"order_id":"o-1","note":"` + strings.Repeat("abc ", 300) + `"}`, `{"n":3,"é":"\u00e9"}`}
			for i := range 20 {
				payloads = append(payloads, fmt.Sprintf(`{"order_id":"o-%d","customer":{"id":"c-1842","name":"Alice Martin"},"items":[{"sku":"SKU-%d","qty":1}],"total":%d.5,"note":"%s"}`, i, i, i, strings.Repeat("x", 400)))
			}
			i := 0
			v.publish(keys.UserFeed("acme", "amy"), len(payloads), func(r *feed.Request) { r.Data = []byte(payloads[i]); i++ })
			var last events.Notification
			for i := range payloads {
				typ, b := c.readRaw()
				n, err := proto2.ParseServerFrame(b)
				if typ != websocket.MessageBinary || err != nil || n.T != "n" || string(n.Data) != payloads[i] || n.Seq != uint64(i+1) {
					t.Fatalf("frame %d: %v %+v %v; want notification %d with data %s", i, typ, n, err, i+1, payloads[i])
				}
				last = n
			}
			c.sendV2(events.ClientFrame{T: "ack", ID: last.ID})
			c.sendV2(events.ClientFrame{T: "ack", ID: "nope"})
			if f := c.next(); f["t"] != "error" || f["code"] != "bad_ack" {
				t.Fatalf("got %v, want a bad_ack error frame", f)
			}
			c.sendV2(events.ClientFrame{T: "ping"})
			if typ, b := c.readRaw(); typ != websocket.MessageBinary || string(b) != string(proto2.Pong) {
				t.Fatalf("got %v %x, want a protocol 2 pong", typ, b)
			}
			c.conn.Close(websocket.StatusNormalClosure, "")
			// The ack took: a new session of the device gets nothing again.
			v.publish(keys.UserFeed("acme", "amy"), 1, nil)
			c2, _ := dialWire(t, e.url, tok, o)
			c2.next() // welcome
			if got := c2.notifications(1); got[0].Seq != uint64(len(payloads)+1) {
				t.Fatalf("after the ack the next session got seq %d first", got[0].Seq)
			}
		})
	}
}

// TestDeflateShrinksFrames: the bytes the edge writes for the same
// notifications, counted by herald_edge_written_bytes_total, are smaller
// with deflate, and the client reads the same frames.
func TestDeflateShrinksFrames(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.CompressionThreshold = -1 })
	data := `{"order_id":"o-7d3f9a21","customer":{"id":"c-1842","name":"Alice Martin","email":"alice.martin@example.com"},"items":[{"sku":"SKU-10422","name":"Wireless Mouse","qty":1,"price":24.99}],"currency":"EUR"}`
	sent := map[string]float64{}
	for _, tt := range []struct {
		user string
		o    wireOpts
		prot string
		comp string
	}{
		{"plain", wireOpts{}, "1", "none"},
		{"deflated", wireOpts{deflate: websocket.CompressionNoContextTakeover}, "1", "deflate"},
		{"binary", wireOpts{protocols: []string{"herald.v2"}, deflate: websocket.CompressionNoContextTakeover}, "2", "deflate"},
	} {
		c, _ := dialWire(t, e.url, v.token(tt.user, "d", time.Hour), tt.o)
		c.next()
		before := metric(t, e.Collectors(), "herald_edge_written_bytes_total", "protocol", tt.prot, "compression", tt.comp)
		v.publish(keys.UserFeed("acme", tt.user), 10, func(r *feed.Request) { r.Data = []byte(data) })
		for _, n := range c.notifications(10) {
			if len(n.Data) != len(data) { // the harness decodes the JSON: keys may move
				t.Fatalf("%s: data %s", tt.user, n.Data)
			}
		}
		eventually(t, "the bytes counted", func() bool {
			sent[tt.user] = metric(t, e.Collectors(), "herald_edge_written_bytes_total", "protocol", tt.prot, "compression", tt.comp) - before
			return sent[tt.user] > 0
		})
	}
	if !(sent["deflated"] < 0.8*sent["plain"] && sent["binary"] < 0.9*sent["plain"]) {
		t.Fatalf("bytes written for 10 notifications: %v", sent)
	}
}

// TestBadFramesOfTheOtherProtocol: the frame type of the other protocol,
// or a frame that does not parse, closes the session with 1008; a
// deflated client frame that inflates past the read limit (a zip bomb)
// with 1009.
func TestBadFramesOfTheOtherProtocol(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	v2 := []string{"herald.v2"}
	deflate := wireOpts{deflate: websocket.CompressionNoContextTakeover, threshold: 1}
	for _, tt := range []struct {
		name string
		o    wireOpts
		typ  websocket.MessageType
		b    []byte
		code websocket.StatusCode
	}{
		{"text on protocol 2", wireOpts{protocols: v2}, websocket.MessageText, []byte(`{"t":"ping"}`), websocket.StatusPolicyViolation},
		{"binary on protocol 1", wireOpts{}, websocket.MessageBinary, proto2.Ping, websocket.StatusPolicyViolation},
		{"malformed MessagePack", wireOpts{protocols: v2}, websocket.MessageBinary, []byte{0x82, 0xa1, 't'}, websocket.StatusPolicyViolation},
		{"unknown field", wireOpts{protocols: v2}, websocket.MessageBinary, append(proto2.Ping[:len(proto2.Ping):len(proto2.Ping)], 0xc0), websocket.StatusPolicyViolation},
		{"deflated, malformed JSON", deflate, websocket.MessageText, []byte(`{"t":`), websocket.StatusPolicyViolation},
		{"zip bomb, protocol 1", deflate, websocket.MessageText, []byte(`{"t":"ping","x":"` + strings.Repeat(" ", 4<<20) + `"}`), websocket.StatusMessageTooBig},
		{"zip bomb, protocol 2", wireOpts{protocols: v2, deflate: websocket.CompressionNoContextTakeover, threshold: 1}, websocket.MessageBinary, make([]byte, 4<<20), websocket.StatusMessageTooBig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := dialWire(t, e.url, v.token("bad", "d", time.Hour), tt.o)
			c.next() // welcome
			if err := c.conn.Write(context.Background(), tt.typ, tt.b); err != nil {
				t.Fatal(err)
			}
			if code := c.closeCode(); code != tt.code {
				t.Fatalf("closed with %d, want %d", code, tt.code)
			}
		})
	}
}

// TestDeflatedClientFrames: deflated frames from the client are read in
// both protocols: a ping gets its pong, a pub is appended upstream.
func TestDeflatedClientFrames(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	for _, prot := range []string{"herald.v1", "herald.v2"} {
		t.Run(prot, func(t *testing.T) {
			c, ext := dialWire(t, e.url, v.token("def"+prot[len(prot)-1:], "d", time.Hour),
				wireOpts{protocols: []string{prot}, deflate: websocket.CompressionNoContextTakeover, threshold: 1})
			if ext != noTakeover {
				t.Fatalf("extension %q", ext)
			}
			c.next()
			pub := events.ClientFrame{T: "pub", Type: "chat.message", Data: json.RawMessage(`{"text":"` + strings.Repeat("hello ", 200) + `"}`)}
			if prot == "herald.v2" {
				c.sendV2(pub)
				c.sendV2(events.ClientFrame{T: "ping"})
			} else {
				b, _ := json.Marshal(pub)
				c.send(string(b))
				c.send(`{"t":"ping"}`)
			}
			if f := c.next(); f["t"] != "pong" {
				t.Fatalf("got %v, want pong", f)
			}
			eventually(t, "the pub upstream", func() bool {
				xs, err := v.rdb.XRange(context.Background(), "herald:upstream", "-", "+").Result()
				for _, x := range xs {
					if x.Values["user"] == "def"+prot[len(prot)-1:] && x.Values["data"] == string(pub.Data) {
						return true
					}
				}
				return err == nil && false
			})
		})
	}
}
