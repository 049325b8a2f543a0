package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/wsedge/auth"
)

// badFrame is something a broken or hostile client sends, and what must
// happen to its own connection.
type badFrame struct {
	name string
	send func(p *probe) error
	code websocket.StatusCode // close code; 0: the connection stays open
	err  string               // with code 0: the error frame's code
}

func badFrames() []badFrame {
	text := func(s string) func(p *probe) error { return func(p *probe) error { return p.text(s) } }
	return []badFrame{
		{name: "not JSON", send: text("hello"), code: websocket.StatusPolicyViolation},
		{name: "empty frame", send: text(""), code: websocket.StatusPolicyViolation},
		{name: "unknown t", send: text(`{"t":"shout"}`), code: websocket.StatusPolicyViolation},
		{name: "no t", send: text(`{"id":"x"}`), code: websocket.StatusPolicyViolation},
		{name: "unknown field", send: text(`{"t":"ping","x":1}`), code: websocket.StatusPolicyViolation},
		{name: "two frames in one", send: text(`{"t":"ping"}{"t":"ping"}`), code: websocket.StatusPolicyViolation},
		{name: "binary frame", send: func(p *probe) error { return p.send(websocket.MessageBinary, []byte{1, 2, 3}) },
			code: websocket.StatusPolicyViolation},
		{name: "oversize frame", send: text(`{"t":"pub","type":"x","data":{"a":"` + strings.Repeat("x", 200<<10) + `"}}`),
			code: websocket.StatusMessageTooBig},
		{name: "ack of a malformed id", send: text(`{"t":"ack","id":"nope"}`), err: "bad_ack"},
		{name: "ack of an id never sent", send: text(`{"t":"ack","id":"0123456789abcdef-999999-user"}`), err: "bad_ack"},
		{name: "ack of another feed", send: text(`{"t":"ack","id":"0123456789abcdef-1-topic:secret"}`), err: "bad_ack"},
		{name: "resume of a feed it does not follow", send: text(`{"t":"resume","feeds":{"topic:secret":{"epoch":"x","seq":1}}}`),
			err: "bad_resume"},
		{name: "sub to a topic the token does not allow", send: text(`{"t":"sub","topic":"secret"}`), err: "forbidden"},
	}
}

// TestBadClientFrames has extra clients send every kind of bad frame
// during traffic: protocol violations close only the sender (1008, 1009
// for an oversize frame), acks of ids never sent and other mistakes get an
// error frame and the connection stays open, and a flood of pings is
// answered. The edges stay up and the fleet loses nothing.
func TestBadClientFrames(t *testing.T) { badClientFrames().run(t) }

func badClientFrames() scenario {
	return scenario{name: "bad-client-frames", undisturbed: true, fault: func(r *run) {
		r.at(2 * time.Second)
		for i, bf := range badFrames() {
			e := r.c.edges[i%len(r.c.edges)]
			checkBadFrame(r, e, fmt.Sprintf("a-bad%d", i), bf)
		}
		pingFlood(r, r.c.edges[0], 5000)
		for _, e := range r.c.edges {
			if e.exited() {
				r.t.Errorf("edge %s exited: %v", e.id, e.err)
			}
		}
	}}
}

func checkBadFrame(r *run, e *edge, user string, bf badFrame) {
	t := r.t
	tok, err := auth.Mint(secret, auth.Claims{Subject: user, Tenant: "acme", Device: "d"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dialProbe(context.Background(), e.url(), tok, nil, nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", bf.name, err)
	}
	defer p.close()
	if f, err := p.next(10 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("%s: first frame %+v, %v; want welcome", bf.name, f, err)
	}
	if err := bf.send(p); err != nil {
		t.Errorf("%s: send: %v", bf.name, err)
		return
	}
	if bf.code != 0 {
		if got := p.closeCode(10 * time.Second); got != bf.code {
			t.Errorf("%s: close code %d, want %d", bf.name, got, bf.code)
		}
		return
	}
	if f, err := p.next(10 * time.Second); err != nil || f.T != "error" || f.Code != bf.err {
		t.Errorf("%s: got %+v, %v; want an error frame %q", bf.name, f, err, bf.err)
		return
	}
	// Still open: a ping gets its pong.
	if err := p.text(`{"t":"ping"}`); err != nil {
		t.Errorf("%s: ping after the error: %v", bf.name, err)
		return
	}
	if f, err := p.next(10 * time.Second); err != nil || f.T != "pong" {
		t.Errorf("%s: got %+v, %v after a ping; want pong (the connection must stay open)", bf.name, f, err)
	}
}

// pingFlood sends n pings as fast as it can while reading. Past the
// session's frame limit (a burst of 2,000, then 200/s) the edge sends an
// error frame and closes with 4029; if the client falls behind reading its
// pongs first, it closes it as a slow consumer (4008); nothing else. Pings
// within the limit are all answered.
func pingFlood(r *run, e *edge, n int) {
	t := r.t
	tok, _ := auth.Mint(secret, auth.Claims{Subject: "a-pinger", Tenant: "acme", Device: "d"}, time.Hour)
	p, err := dialProbe(context.Background(), e.url(), tok, nil, nil)
	if err != nil {
		t.Fatalf("ping flood: dial: %v", err)
	}
	defer p.close()
	if f, err := p.next(10 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("ping flood: first frame %+v, %v", f, err)
	}
	var pongs atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for pongs.Load() < int64(n) {
			f, _, err := p.read(20 * time.Second)
			if err != nil {
				readErr <- err
				return
			}
			if f.T == "pong" {
				pongs.Add(1)
			}
		}
		readErr <- nil
	}()
	start := time.Now()
	for range n {
		if err := p.text(`{"t":"ping"}`); err != nil {
			break
		}
	}
	err = <-readErr
	switch code := websocket.CloseStatus(err); {
	case err == nil && n <= 2000:
		t.Logf("ping flood: %d pings answered in %v", n, time.Since(start).Round(time.Millisecond))
	case code == 4029:
		t.Logf("ping flood: closed with 4029 (frame limit) after %d of %d pongs", pongs.Load(), n)
	case code == 4008:
		t.Logf("ping flood: closed with 4008 after %d of %d pongs", pongs.Load(), n)
	default:
		t.Errorf("ping flood: %d of %d pongs, then %v", pongs.Load(), n, err)
	}
}
