package centrifugo_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// startServer starts centrifugo against redisAddr and stops it at cleanup,
// failing the test if Stop reports a problem.
func startServer(t *testing.T, redisAddr string, cfg centrifugo.Config) *centrifugo.Server {
	t.Helper()
	bin := centrifugo.TestBinary(t)
	srv, err := centrifugo.Start(t.Context(), bin, redisAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop centrifugo: %v", err)
		}
	})
	return srv
}

// client is a test WebSocket client of the JSON protocol: it connects,
// answers pings (unless mute), and records what it reads. Its reader is the
// only goroutine that touches positions.
type client struct {
	t    *testing.T
	user string
	conn *websocket.Conn
	done chan struct{} // closed when the reader returns

	mu        sync.Mutex
	connect   *centrifugo.ConnectReply
	connErr   *centrifugo.ReplyError
	pubs      []centrifugo.Publication
	pings     int
	closeCode websocket.StatusCode
	readErr   error
	positions centrifugo.Positions
}

// dial connects user to srv, resuming from positions if there are any, and
// waits for the connect reply.
func dial(t *testing.T, srv *centrifugo.Server, user string, positions centrifugo.Positions, mute bool) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.ConnectURL(), nil)
	if err != nil {
		t.Fatalf("dial %s: %v", srv.ConnectURL(), err)
	}
	tok, err := srv.Token(user, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, user: user, conn: conn, done: make(chan struct{}), closeCode: -1, positions: centrifugo.Positions{}}
	for ch, p := range positions {
		c.positions[ch] = p
	}
	if err := conn.Write(ctx, websocket.MessageText, centrifugo.ConnectCommand(1, tok, positions)); err != nil {
		t.Fatalf("send connect: %v", err)
	}
	go c.read(mute)
	t.Cleanup(c.close)
	waitFor(t, user+" connect reply", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.connErr != nil {
			t.Fatalf("connect of %s refused: %v", user, c.connErr)
		}
		return c.connect != nil
	})
	return c
}

// read reads frames until the connection ends.
func (c *client) read(mute bool) {
	defer close(c.done)
	var f centrifugo.Frame
	for {
		_, msg, err := c.conn.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.readErr, c.closeCode = err, websocket.CloseStatus(err)
			c.mu.Unlock()
			return
		}
		if err := f.Parse(msg); err != nil {
			c.t.Errorf("%s: %v", c.user, err)
			return
		}
		for range f.Pings {
			if !mute {
				_ = c.conn.Write(context.Background(), websocket.MessageText, []byte(centrifugo.Pong))
			}
		}
		c.record(&f)
	}
}

func (c *client) record(f *centrifugo.Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.positions.Update(f)
	if f.Connect != nil && f.Connect.ID == 1 {
		c.connect = f.Connect
	}
	for i, e := range f.Errors {
		if e.ID == 1 {
			c.connErr = &f.Errors[i]
		}
	}
	c.pubs = append(c.pubs, slices.Clone(f.Publications)...)
	c.pings += f.Pings
}

// close closes the connection (1000) and waits for the reader.
func (c *client) close() {
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	<-c.done
}

// data returns the data of the publications read so far, as strings.
func (c *client) data() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.pubs))
	for i, p := range c.pubs {
		out[i] = string(p.Data)
	}
	return out
}

func (c *client) publications() []centrifugo.Publication {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.pubs)
}

func (c *client) connectReply() *centrifugo.ConnectReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connect
}

func (c *client) pingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// savedPositions returns a copy of the client's positions.
func (c *client) savedPositions() centrifugo.Positions {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := centrifugo.Positions{}
	for ch, p := range c.positions {
		out[ch] = p
	}
	return out
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling another process's output: nothing to wait on
	}
}

// msg returns a publication's data: a small JSON object.
func msg(kind string, n int) []byte { return fmt.Appendf(nil, `{"k":%q,"n":%d}`, kind, n) }
