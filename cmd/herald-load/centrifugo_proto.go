package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// centrifugoClients is the Centrifugo client half in a worker: where to
// connect, whether the personal channels keep history (the clients then
// resume), and the secret that signs each client's token.
type centrifugoClients struct {
	url     string
	history bool
	secret  string
	exp     time.Time
}

// centrifugoClientSide parses the flags of centrifugoTarget.WorkerArgs;
// the secret comes from the environment.
func centrifugoClientSide(args []string) (ClientSide, error) {
	c := &centrifugoClients{exp: time.Now().Add(tokenTTL)}
	f := newFlags("worker (centrifugo)", "The Centrifugo client settings of a worker.")
	f.StringVar(&c.url, "url", "", "the WebSocket URL")
	f.BoolVar(&c.history, "history", false, "the personal channels keep history: resume after a reconnect")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	c.secret = os.Getenv(centrifugoTokenEnv)
	if c.url == "" || c.secret == "" {
		return nil, fmt.Errorf("%w: worker: need --url and %s", errUsage, centrifugoTokenEnv)
	}
	return c, nil
}

func (c *centrifugoClients) Client(user int) Protocol {
	return &centrifugoProto{c: c, user: "u" + strconv.Itoa(user), pos: make(centrifugo.Positions)}
}

// centrifugoProto is one client of Centrifugo's JSON protocol: a connect
// command on every connection (naming the position of each channel it has
// seen, with history), a pong for every ping, and nothing else: the
// protocol has no acks. It drops a publication whose offset it has had
// (history only; without history publications carry no offset).
type centrifugoProto struct {
	c     *centrifugoClients
	user  string
	token string
	id    uint32
	pos   centrifugo.Positions
	frame centrifugo.Frame
}

func (p *centrifugoProto) Dial() (string, http.Header, error) { return p.c.url, nil, nil }

func (p *centrifugoProto) Hello() [][]byte {
	if p.token == "" {
		tok, err := centrifugo.SignToken(p.c.secret, p.user, p.c.exp)
		if err != nil {
			return nil // the connect without a token is refused and says why
		}
		p.token = tok
	}
	p.id++
	var positions map[string]centrifugo.Position
	if p.c.history && len(p.pos) > 0 {
		positions = p.pos
	}
	return [][]byte{centrifugo.ConnectCommand(p.id, p.token, positions)}
}

func (p *centrifugoProto) Read(msg []byte) (Msg, error) {
	f := &p.frame
	if err := f.Parse(msg); err != nil {
		return Msg{}, err
	}
	var m Msg
	if f.Connect != nil {
		m.Welcome = true
		m.Resumed, m.Problem = p.connected(f.Connect)
	}
	for _, pub := range f.Publications {
		if p.seen(pub) {
			m.Duplicates++
			continue
		}
		m.Payloads = append(m.Payloads, pub.Data)
	}
	for range f.Pings {
		m.Reply = append(m.Reply, []byte(centrifugo.Pong))
	}
	if len(f.Errors) > 0 {
		m.Problem = f.Errors[0].Error()
	}
	return m, nil
}

// connected takes the connect reply's positions (the stream's top on a
// first connect, the one asked from after a recovery) and says whether
// the client asked to recover, and what did not come back.
func (p *centrifugoProto) connected(r *centrifugo.ConnectReply) (resumed bool, problem string) {
	var lost []string
	for ch, s := range r.Subs {
		if s.WasRecovering {
			resumed = true
			if !s.Recovered {
				lost = append(lost, ch)
			}
		}
		if !s.Recoverable {
			continue
		}
		if old, ok := p.pos[ch]; !ok || old.Epoch != s.Epoch || old.Offset < s.Offset {
			p.pos[ch] = s.Position
		}
	}
	if len(lost) > 0 {
		problem = "centrifugo: recovery incomplete in " + strings.Join(lost, ", ")
	}
	return resumed, problem
}

// seen reports whether the client has had pub (by offset, in a channel
// with history), and moves the channel's position to it otherwise.
func (p *centrifugoProto) seen(pub centrifugo.Publication) bool {
	pos, ok := p.pos[pub.Channel]
	if !ok || pub.Offset == 0 {
		return false
	}
	if pub.Offset <= pos.Offset {
		return true
	}
	pos.Offset = pub.Offset
	p.pos[pub.Channel] = pos
	return false
}

// Acks: Centrifugo's protocol has none.
func (p *centrifugoProto) Acks() [][]byte { return nil }

// Terminal follows Centrifugo's rule: 3500-3999 and 4500-4999 end a
// client (3500 invalid token, 3501 bad request...).
func (p *centrifugoProto) Terminal(code int) bool {
	return code >= 0 && !centrifugo.ShouldReconnect(code)
}
