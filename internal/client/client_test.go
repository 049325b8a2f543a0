package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/client"
	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/internal/proto2"
)

// server is a minimal protocol-1 server on a real socket: it sends a
// welcome, then the notifications given to it, and records every frame the
// client sends.
type server struct {
	*httptest.Server
	send chan []byte

	mu  sync.Mutex
	got []string
}

func newServer(t *testing.T) *server { return newServerOf(t, false) }

// newServerOf is newServer, speaking protocol 2 with permessage-deflate
// (to a client that offers them) when v2 is set: frames given to it are
// then MessagePack, and the frames it records are converted to JSON.
func newServerOf(t *testing.T, v2 bool) *server {
	s := &server{send: make(chan []byte, 64)}
	typ, welcome := websocket.MessageText, []byte(`{"t":"welcome","session":"s","user":"u","tenant":"t","device":"d","heartbeat":25}`)
	opts := &websocket.AcceptOptions{}
	if v2 {
		typ, welcome = websocket.MessageBinary, proto2.AppendWelcome(nil, events.Welcome{T: "welcome", Session: "s", User: "u", Tenant: "t", Device: "d", Heartbeat: 25})
		opts = &websocket.AcceptOptions{Subprotocols: []string{events.Protocol2}, CompressionMode: websocket.CompressionNoContextTakeover, CompressionThreshold: 1}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		if v2 && (c.Subprotocol() != events.Protocol2 || !strings.Contains(w.Header().Get("Sec-WebSocket-Extensions"), "permessage-deflate")) {
			c.Close(websocket.StatusPolicyViolation, "want herald.v2 and permessage-deflate")
			return
		}
		c.Write(ctx, typ, welcome)
		go func() {
			defer cancel() // the client has gone: stop sending
			for {
				rt, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				if rt == websocket.MessageBinary {
					b, _ = proto2.ToJSON(b)
				}
				s.mu.Lock()
				s.got = append(s.got, string(b))
				s.mu.Unlock()
			}
		}()
		for {
			select {
			case b := <-s.send:
				if c.Write(ctx, typ, b) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) frames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (s *server) url() string { return "ws" + strings.TrimPrefix(s.URL, "http") }

func runClient(t *testing.T, cfg client.Config, got chan<- events.Notification) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.New(cfg).Run(ctx, func(n events.Notification) { got <- n })
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// A burst of notifications is acked once, cumulatively, with the newest id,
// about AckEvery after the first of them.
func TestBurstIsAckedOnce(t *testing.T) {
	t.Cleanup(func() { leakcheck.VerifyNone(t) }) // runs last, after the server and client stop
	s := newServer(t)
	got := make(chan events.Notification, 16)
	runClient(t, client.Config{URL: s.url(), Token: func() (string, error) { return "x", nil }, NoResume: true,
		AckEvery: 100 * time.Millisecond}, got)
	start := time.Now()
	for seq := uint64(1); seq <= 5; seq++ {
		s.send <- events.AppendNotification(nil, fmt.Sprintf("e-%d-user", seq), "user", seq, "t", 1, []byte(`{}`))
	}
	for range 5 {
		<-got
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.frames()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the recorded frames, not synchronising
	}
	if f := s.frames(); len(f) != 1 || f[0] != `{"t":"ack","id":"e-5-user"}` {
		t.Fatalf("client sent %q, want one ack of e-5-user", f)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("acked after %v, before AckEvery", waited)
	}
	// A later notification arms the timer again.
	s.send <- events.AppendNotification(nil, "e-6-user", "user", 6, "t", 1, []byte(`{}`))
	<-got
	for len(s.frames()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if f := s.frames(); len(f) != 2 || f[1] != `{"t":"ack","id":"e-6-user"}` {
		t.Fatalf("client sent %q, want a second ack of e-6-user", f)
	}
}

// A client stopped (its context cancelled, as herald listen --count does
// after the last notification) acks what it has handled before it closes,
// without waiting for AckEvery.
func TestStopAcksWhatWasHandled(t *testing.T) {
	t.Cleanup(func() { leakcheck.VerifyNone(t) })
	s := newServer(t)
	got := make(chan events.Notification, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		client.New(client.Config{URL: s.url(), Token: func() (string, error) { return "x", nil }, NoResume: true,
			AckEvery: time.Hour}).Run(ctx, func(n events.Notification) {
			if got <- n; n.Seq == 3 {
				cancel()
			}
		})
	}()
	for seq := uint64(1); seq <= 3; seq++ {
		s.send <- events.AppendNotification(nil, fmt.Sprintf("e-%d-user", seq), "user", seq, "t", 1, []byte(`{}`))
	}
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for len(s.frames()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the recorded frames, not synchronising
	}
	if f := s.frames(); len(f) != 1 || f[0] != `{"t":"ack","id":"e-3-user"}` {
		t.Fatalf("client sent %q, want one ack of e-3-user before closing", f)
	}
}

// A client with NoAck sends nothing.
func TestNoAckSendsNothing(t *testing.T) {
	t.Cleanup(func() { leakcheck.VerifyNone(t) }) // runs last, after the server and client stop
	s := newServer(t)
	got := make(chan events.Notification, 16)
	runClient(t, client.Config{URL: s.url(), Token: func() (string, error) { return "x", nil }, NoResume: true,
		NoAck: true, AckEvery: time.Millisecond}, got)
	s.send <- events.AppendNotification(nil, "e-1-user", "user", 1, "t", 1, []byte(`{}`))
	<-got
	time.Sleep(50 * time.Millisecond) // give a wrongly armed 1 ms timer time to fire
	if f := s.frames(); len(f) != 0 {
		t.Fatalf("client with NoAck sent %q", f)
	}
}

// A client of protocol 2 with permessage-deflate reads MessagePack
// notifications (deflated ones too) and acks in MessagePack.
func TestProtocol2AndDeflate(t *testing.T) {
	t.Cleanup(func() { leakcheck.VerifyNone(t) })
	s := newServerOf(t, true)
	got := make(chan events.Notification, 16)
	connected := make(chan string, 4)
	runClient(t, client.Config{URL: s.url(), Token: func() (string, error) { return "x", nil }, NoResume: true,
		AckEvery: time.Millisecond, Protocol2: true, Deflate: true,
		OnEvent: func(kind, detail string) {
			if kind == "connected" {
				connected <- detail
			}
		}}, got)
	if d := <-connected; d != "protocol 2, permessage-deflate" {
		t.Fatalf("connected: %q, want the agreed protocol and compression", d)
	}
	data := `{"note":"` + strings.Repeat("compressible ", 100) + `"}`
	s.send <- proto2.AppendNotification(nil, "e-1-user", "user", 1, "t", 1, []byte(data))
	if n := <-got; n.Seq != 1 || string(n.Data) != data {
		t.Fatalf("got %+v", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(s.frames()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the recorded frames, not synchronising
	}
	if f := s.frames(); len(f) != 1 || f[0] != `{"id":"e-1-user","t":"ack"}` {
		t.Fatalf("client sent %q, want one ack of e-1-user", f)
	}
}
