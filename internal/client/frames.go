package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
)

// dial connects; wire says what the edge agreed to: the protocol and
// whether frames may come deflated.
func (c *Client) dial(ctx context.Context) (_ *websocket.Conn, wire string, _ error) {
	token, err := c.cfg.Token()
	if err != nil {
		return nil, "", fmt.Errorf("client token: %w", err)
	}
	u, err := url.Parse(c.cfg.URL)
	if err != nil {
		return nil, "", err
	}
	q := u.Query()
	q.Set("token", token)
	if c.cfg.Device != "" {
		q.Set("device", c.cfg.Device)
	}
	u.RawQuery = q.Encode()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: c.httpClient()}
	if c.cfg.Protocol2 {
		opts.Subprotocols = []string{events.Protocol2}
	}
	if c.cfg.Deflate {
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	}
	conn, resp, err := websocket.Dial(dctx, u.String(), opts)
	if err != nil {
		return nil, "", err
	}
	wire = "protocol 1"
	if conn.Subprotocol() == events.Protocol2 {
		wire = "protocol 2"
	}
	if strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		wire += ", permessage-deflate"
	}
	return conn, wire, nil
}

// write sends a client frame in the connection's protocol.
func write(ctx context.Context, conn *websocket.Conn, f events.ClientFrame) error {
	if conn.Subprotocol() == events.Protocol2 {
		return conn.Write(ctx, websocket.MessageBinary, proto2.AppendClientFrame(nil, f))
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, b)
}

var localClients sync.Map // source address -> *http.Client

func (c *Client) httpClient() *http.Client {
	if c.cfg.Dialer != nil {
		return c.cfg.Dialer
	}
	if c.cfg.LocalAddr == "" {
		return http.DefaultClient
	}
	if hc, ok := localClients.Load(c.cfg.LocalAddr); ok {
		return hc.(*http.Client)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.cfg.LocalAddr)}, Timeout: 10 * time.Second}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	v, _ := localClients.LoadOrStore(c.cfg.LocalAddr, hc)
	return v.(*http.Client)
}

// frame handles one server frame.
func (c *Client) frame(ctx context.Context, conn *websocket.Conn, typ websocket.MessageType, b []byte, handle func(events.Notification)) error {
	if typ == websocket.MessageBinary { // protocol 2: the same frame as JSON
		j, err := proto2.ToJSON(b)
		if err != nil {
			return fmt.Errorf("client: bad frame %x: %w", b[:min(len(b), 50)], err)
		}
		b = j
	}
	n, err := events.ParseNotification(b)
	if err != nil {
		return fmt.Errorf("client: bad frame %.100s: %w", b, err)
	}
	switch n.T {
	case events.FrameNotification:
		c.notification(n, handle)
	case events.FrameWelcome:
		c.event("welcome", string(b))
		for _, t := range c.cfg.Topics {
			if err := write(ctx, conn, events.ClientFrame{T: events.FrameSub, Topic: t}); err != nil {
				return err
			}
		}
		if !c.cfg.NoResume {
			return c.resume(ctx, conn)
		}
	case events.FrameReset:
		c.stats.resets.Add(1)
		c.event("reset", string(b))
	case events.FrameError:
		c.stats.errors.Add(1)
		c.event("error", string(b))
	}
	return nil
}

func (c *Client) notification(n events.Notification, handle func(events.Notification)) {
	epoch := epochOf(n.ID)
	c.mu.Lock()
	p := c.pos[n.Feed]
	if p == nil {
		p = &position{}
		c.pos[n.Feed] = p
	}
	dup := p.epoch == epoch && n.Seq <= p.seq
	if !dup {
		if p.epoch != epoch {
			p.acked = 0
		}
		p.epoch, p.seq, p.id = epoch, n.Seq, n.ID
	}
	c.mu.Unlock()
	if dup {
		c.stats.duplicates.Add(1)
		return
	}
	c.stats.notifications.Add(1)
	handle(n)
}

// resume tells the server where this client is in every feed it has seen.
func (c *Client) resume(ctx context.Context, conn *websocket.Conn) error {
	c.mu.Lock()
	feeds := make(map[string]events.Position, len(c.pos))
	for name, p := range c.pos {
		feeds[name] = events.Position{Epoch: p.epoch, Seq: p.seq}
	}
	c.mu.Unlock()
	if len(feeds) == 0 {
		return nil
	}
	return write(ctx, conn, events.ClientFrame{T: events.FrameResume, Feeds: feeds})
}

// acker sends one connection's cumulative acks, the newest notification of
// every feed, AckEvery after the first notification not yet acked. A timer
// sends them: the read loop only arms it, so a notification costs no
// goroutine wake-up of its own.
type acker struct {
	c     *Client
	ctx   context.Context
	conn  *websocket.Conn
	t     *time.Timer
	armed atomic.Bool

	mu   sync.Mutex // held while sending; stop waits for it
	done bool
}

func (c *Client) newAcker(ctx context.Context, conn *websocket.Conn) *acker {
	a := &acker{c: c, ctx: ctx, conn: conn}
	a.t = time.AfterFunc(time.Hour, a.send)
	a.t.Stop()
	return a
}

// arm starts the timer unless it is already running.
func (a *acker) arm() {
	if a.armed.CompareAndSwap(false, true) {
		a.t.Reset(a.c.cfg.AckEvery)
	}
}

func (a *acker) send() { a.sendWith(a.ctx) }

// final sends what is not acked yet, with a second of its own: the client
// is being stopped (its context is done), and what it has handled should
// not be replayed next time.
func (a *acker) final() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.t.Stop()
	a.sendWith(ctx)
}

func (a *acker) sendWith(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.armed.Store(false) // before reading positions: a later notification arms again
	type ack struct {
		p         *position
		seq       uint64
		id, epoch string
	}
	a.c.mu.Lock()
	var acks []ack
	for _, p := range a.c.pos {
		if p.seq > p.acked && p.id != "" {
			acks = append(acks, ack{p, p.seq, p.id, p.epoch})
		}
	}
	a.c.mu.Unlock()
	for _, k := range acks {
		if write(ctx, a.conn, events.ClientFrame{T: events.FrameAck, ID: k.id}) != nil {
			return // not acked: the next send (or final) tries again
		}
		a.c.mu.Lock()
		if k.p.epoch == k.epoch { // counted once written, unless the feed restarted meanwhile
			k.p.acked = max(k.p.acked, k.seq)
		}
		a.c.mu.Unlock()
	}
}

// stop ends the acker and waits for a send in progress (its context should
// be cancelled first, so that the send does not wait on a stuck write).
func (a *acker) stop() {
	a.t.Stop()
	a.mu.Lock()
	a.done = true
	a.mu.Unlock()
}

// epochOf reads the epoch out of a notification id ("<epoch>-<seq>-<feed>").
func epochOf(id string) string {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			return id[:i]
		}
	}
	return id
}
