package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/heraldrt/herald/wsedge/auth"
)

// loadDevice is the device id of every load client: one device per user.
const loadDevice = "load"

// heraldClients is the Herald client half in a worker: the edges, the
// tenant and the secret that mints each client's token.
type heraldClients struct {
	edges  []string
	tenant string
	secret []byte
	ttl    time.Duration
	wire   heraldWire
}

// heraldWire is what Herald clients offer in the handshake: the protocol
// (--protocol v1|v2) and permessage-deflate (--deflate).
type heraldWire struct {
	protocol string // "v1" or "v2"
	deflate  bool
	takeover bool // offer deflate without server_no_context_takeover, as browsers do
}

// flags defines --protocol and --deflate on f.
func (w *heraldWire) flags(f *flags) {
	f.String(&w.protocol, "protocol", "v1", "herald: the clients' protocol: v1 (JSON text frames) or v2 (herald.v2: MessagePack binary frames)")
	f.Bool(&w.deflate, "deflate", false, "herald: the clients offer permessage-deflate (the edge deflates frames above its --compression-threshold)")
	f.Bool(&w.takeover, "deflate-context-takeover", false, "herald: with --deflate, offer it as browsers do, letting the server keep its context (an edge with --compression-context-takeover then does); each client keeps a 32 KiB inflate window")
}

func (w *heraldWire) check() error {
	if w.protocol != "v1" && w.protocol != "v2" {
		return fmt.Errorf("%w: --protocol %q: want v1 or v2", errUsage, w.protocol)
	}
	return nil
}

// args are the flags that give a worker the same wire.
func (w *heraldWire) args() []string {
	return []string{"--protocol", w.protocol, "--deflate=" + strconv.FormatBool(w.deflate),
		"--deflate-context-takeover=" + strconv.FormatBool(w.takeover)}
}

// heraldClientSide parses the flags of herald.WorkerArgs; the secret comes
// from the environment.
func heraldClientSide(args []string) (ClientSide, error) {
	var edges, tenant string
	f := newFlags("worker (herald)", "The Herald client settings of a worker.")
	f.StringVar(&edges, "edges", "", "edge URLs")
	f.StringVar(&tenant, "tenant", "", "tenant")
	var wire heraldWire
	wire.flags(f)
	if err := f.parse(args); err != nil {
		return nil, err
	}
	if err := wire.check(); err != nil {
		return nil, err
	}
	secret := os.Getenv(secretEnv)
	if len(secret) < auth.MinSecretLen {
		return nil, fmt.Errorf("%w: worker: %s must hold the edges' HS256 secret", errUsage, secretEnv)
	}
	h := &heraldClients{edges: splitList(edges), tenant: tenant, secret: []byte(secret), ttl: 24 * time.Hour, wire: wire}
	if len(h.edges) == 0 || !events.ValidTenant(tenant) {
		return nil, fmt.Errorf("%w: worker: need --edges and a valid --tenant", errUsage)
	}
	return h, nil
}

func (h *heraldClients) Client(user int) Protocol {
	return &heraldProto{h: h, user: user, pos: make(map[string]*feedPos)}
}

// heraldProto is one client of protocol 1: it drops duplicates by (feed,
// epoch, seq), resumes every feed it has seen after each welcome, and
// acks the newest notification of each feed (acks are cumulative).
type heraldProto struct {
	h     *heraldClients
	user  int
	token string
	pos   map[string]*feedPos
}

// feedPos is where the client is in one feed.
type feedPos struct {
	epoch string
	seq   uint64
	acked uint64
	id    string // the notification at seq
}

func (p *heraldProto) Dial() (string, http.Header, error) {
	if p.token == "" {
		claims := auth.Claims{Subject: "u" + strconv.Itoa(p.user), Tenant: p.h.tenant, Device: loadDevice}
		tok, err := auth.Mint(p.h.secret, claims, p.h.ttl)
		if err != nil {
			return "", nil, fmt.Errorf("mint token: %w", err)
		}
		p.token = tok
	}
	u, err := url.Parse(p.h.edges[p.user%len(p.h.edges)])
	if err != nil {
		return "", nil, err
	}
	q := u.Query()
	q.Set("token", p.token)
	u.RawQuery = q.Encode()
	return u.String(), nil, nil
}

func (p *heraldProto) Hello() [][]byte { return nil }

// DialOptions offers the protocol and compression of --protocol and
// --deflate (wireOptions).
func (p *heraldProto) DialOptions(o *websocket.DialOptions) {
	if p.h.wire.protocol == "v2" {
		o.Subprotocols = []string{events.Protocol2}
	}
	switch {
	case p.h.wire.deflate && p.h.wire.takeover:
		o.CompressionMode = websocket.CompressionContextTakeover
	case p.h.wire.deflate:
		o.CompressionMode = websocket.CompressionNoContextTakeover
	}
}

// MessageType is the type of the client's frames: binary for protocol 2.
func (p *heraldProto) MessageType() websocket.MessageType {
	if p.v2() {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

func (p *heraldProto) v2() bool { return p.h.wire.protocol == "v2" }

func (p *heraldProto) Read(msg []byte) (Msg, error) {
	parse := events.ParseNotification
	if p.v2() {
		parse = proto2.ParseServerFrame
	}
	n, err := parse(msg)
	if err != nil {
		return Msg{}, fmt.Errorf("herald: bad frame %.100q: %w", msg, err)
	}
	switch n.T {
	case events.FrameNotification:
		return p.notification(n), nil
	case events.FrameWelcome:
		m := Msg{Welcome: true}
		if r := p.resume(); r != nil {
			m.Resumed, m.Reply = true, [][]byte{r}
		}
		return m, nil
	case events.FrameReset, events.FrameError:
		if p.v2() {
			if j, err := proto2.ToJSON(msg); err == nil {
				msg = j
			}
		}
		return Msg{Problem: string(msg)}, nil
	}
	return Msg{}, nil
}

func (p *heraldProto) notification(n events.Notification) Msg {
	epoch := epochOf(n.ID)
	fp := p.pos[n.Feed]
	if fp == nil {
		fp = &feedPos{}
		p.pos[n.Feed] = fp
	}
	if fp.epoch == epoch && n.Seq <= fp.seq {
		return Msg{Duplicates: 1}
	}
	if fp.epoch != epoch {
		fp.acked = 0
	}
	fp.epoch, fp.seq, fp.id = epoch, n.Seq, n.ID
	return Msg{Payloads: [][]byte{n.Data}}
}

// resume is the resume frame naming every feed seen, or nil.
func (p *heraldProto) resume() []byte {
	if len(p.pos) == 0 {
		return nil
	}
	feeds := make(map[string]events.Position, len(p.pos))
	for name, fp := range p.pos {
		feeds[name] = events.Position{Epoch: fp.epoch, Seq: fp.seq}
	}
	f := events.ClientFrame{T: events.FrameResume, Feeds: feeds}
	if p.v2() {
		return proto2.AppendClientFrame(nil, f)
	}
	b, _ := json.Marshal(f)
	return b
}

func (p *heraldProto) Acks() [][]byte {
	var out [][]byte
	for _, fp := range p.pos {
		if fp.seq > fp.acked && fp.id != "" {
			if p.v2() {
				out = append(out, proto2.AppendAck(nil, fp.id))
			} else {
				out = append(out, appendAck(nil, fp.id))
			}
			fp.acked = fp.seq
		}
	}
	return out
}

// Terminal: Herald's 4001 (bad token) and 4003 (forbidden), and the
// transport's 1008 and 1009, end a client; anything else reconnects.
func (p *heraldProto) Terminal(code int) bool {
	switch code {
	case 4001, 4003, int(websocket.StatusPolicyViolation), int(websocket.StatusMessageTooBig):
		return true
	}
	return false
}

// appendAck appends {"t":"ack","id":"<id>"}, the form SDKs write (ids are
// plain ASCII: <epoch>-<seq>-<feed>).
func appendAck(b []byte, id string) []byte {
	b = append(b, `{"t":"ack","id":"`...)
	b = append(b, id...)
	return append(b, `"}`...)
}

// epochOf reads the epoch out of a notification id.
func epochOf(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			return id[:i]
		}
	}
	return id
}
