package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
)

// ErrTerminal is returned by Run when the server closed with a code that
// reconnecting cannot fix (4001, 4003, 1008, 1009).
var ErrTerminal = errors.New("client: terminal close")

// Config configures a Client. Zero values are the documented defaults.
type Config struct {
	URL        string                 // ws://host:port/ws
	Token      func() (string, error) // called before every connect
	Device     string                 // sent as ?device= when the token has none; "" = none
	NoAck      bool                   // never ack (a client that only reads)
	NoResume   bool                   // do not send resume frames (rely on the server's ACK positions)
	AckEvery   time.Duration          // ack batching: at most one ack per feed this often; 0 means 1s
	MinBackoff time.Duration          // 0 means 100ms
	MaxBackoff time.Duration          // 0 means 5s
	Dialer     *http.Client           // nil means http.DefaultClient
	LocalAddr  string                 // source IP to dial from (load tests spread over 127.0.0.x); "" = any
	Topics     []string               // topics to subscribe to after every welcome
	Protocol2  bool                   // offer herald.v2 (MessagePack in binary frames) instead of protocol 1
	Deflate    bool                   // offer permessage-deflate (and deflate the client's own frames)
	// OnEvent sees every frame other than notifications (welcome, reset,
	// error) and connection events ("connected" with the protocol and
	// compression agreed, "closed <code>").
	OnEvent func(kind string, detail string)
}

// Stats counts what a client saw.
type Stats struct {
	Connects      int64
	Notifications int64 // delivered to the handler (after dedup)
	Duplicates    int64 // dropped: seen before on the wire
	Resets        int64
	Errors        int64 // error frames
}

type position struct {
	epoch string
	seq   uint64
	acked uint64
	id    string // id of the notification at seq
}

// Client is one device's connection.
type Client struct {
	cfg   Config
	mu    sync.Mutex // guards pos between the reader and the ack loop
	pos   map[string]*position
	stats struct {
		connects, notifications, duplicates, resets, errors atomic.Int64
	}
}

// New returns a client; Run connects.
func New(cfg Config) *Client {
	if cfg.AckEvery <= 0 {
		cfg.AckEvery = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	return &Client{cfg: cfg, pos: make(map[string]*position)}
}

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{
		Connects: c.stats.connects.Load(), Notifications: c.stats.notifications.Load(),
		Duplicates: c.stats.duplicates.Load(), Resets: c.stats.resets.Load(), Errors: c.stats.errors.Load(),
	}
}

// Run connects and hands every new notification, in order per feed, to
// handle, reconnecting until ctx ends (then it returns nil) or the server
// refuses for good (ErrTerminal).
func (c *Client) Run(ctx context.Context, handle func(events.Notification)) error {
	backoff := c.cfg.MinBackoff
	for ctx.Err() == nil {
		code, err := c.session(ctx, handle)
		if ctx.Err() != nil {
			return nil
		}
		c.event("closed", fmt.Sprintf("%d %v", code, err))
		switch code {
		case 4001, 4003, websocket.StatusPolicyViolation, websocket.StatusMessageTooBig:
			return fmt.Errorf("%w: %d: %v", ErrTerminal, code, err)
		}
		if code != -1 {
			backoff = c.cfg.MinBackoff // it was connected: start over
		}
		sleep(ctx, backoff/2+rand.N(backoff/2+1))
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
	return nil
}

func (c *Client) event(kind, detail string) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(kind, detail)
	}
}

// session runs one connection; it returns the close code (-1 when it never
// connected).
func (c *Client) session(ctx context.Context, handle func(events.Notification)) (websocket.StatusCode, error) {
	conn, wire, err := c.dial(ctx)
	if err != nil {
		return -1, err
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	c.stats.connects.Add(1)
	c.event("connected", wire)
	sctx, cancel := context.WithCancel(ctx)
	var a *acker
	if !c.cfg.NoAck {
		a = c.newAcker(sctx, conn)
		defer a.stop() // after cancel (defers run last first): a pending write returns
	}
	defer cancel()
	// Reads take no context (a cancellable one costs the library a
	// context.AfterFunc per frame): when ctx ends, the close handshake
	// ends the blocked read.
	stop := context.AfterFunc(ctx, func() {
		if a != nil {
			a.final() // before the close frame, after which nothing may be sent
		}
		conn.Close(websocket.StatusNormalClosure, "bye")
	})
	defer stop()
	var buf bytes.Buffer
	for {
		typ, r, err := conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r) // the read limit bounds it
		}
		if err != nil {
			return websocket.CloseStatus(err), err
		}
		if ctx.Err() != nil {
			continue // stopped: what comes now is not handled (nor acked), and comes again next time
		}
		if err := c.frame(sctx, conn, typ, buf.Bytes(), handle); err != nil {
			return websocket.CloseStatus(err), err
		}
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{} // do not keep a rare large frame's buffer
		}
		if a != nil {
			a.arm()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
