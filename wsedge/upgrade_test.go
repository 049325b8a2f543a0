package wsedge_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/leakcheck"
	"github.com/heraldrt/herald/wsedge"
)

// rawRequest sends req on a new connection to e's listener, in parts with
// a pause between them when split, and returns the status line and, when
// the request asks for it (Connection: close), whether the edge closed the
// connection after its response.
func rawRequest(t *testing.T, e *edge, req string, split int) (status string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if split > 0 && split < len(req) {
		if _, err := io.WriteString(c, req[:split]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the request arrives in two parts: the condition under test
		req = req[split:]
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", req, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !strings.Contains(req, "Connection: close") {
		return resp.Status, false
	}
	_, err = br.ReadByte()
	return resp.Status, err != nil // EOF, or a reset when the edge closed with the request unread
}

// The listener upgrades /ws itself and hands every other request to
// net/http, also when its first bytes arrive alone; refused handshakes get
// an HTTP error and a closed connection; an oversized upgrade request gets
// 431.
func TestUpgradeListenerRoutesRequests(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	for _, split := range []int{0, 3, 9} {
		if st, _ := rawRequest(t, e, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", split); st != "200 OK" {
			t.Fatalf("healthz split at %d: %q", split, st)
		}
	}
	if st, _ := rawRequest(t, e, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 0); st != "404 Not Found" {
		t.Fatalf("unknown path: %q", st)
	}
	// /ws without the upgrade headers: the library's refusal, then close
	st, closed := rawRequest(t, e, "GET /ws?token=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 4)
	if !strings.HasPrefix(st, "4") || !closed {
		t.Fatalf("plain GET of /ws: %q, closed %v; want a 4xx and a closed connection", st, closed)
	}
	if st, closed := rawRequest(t, e, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "+strings.Repeat("a", 20<<10)+"\r\n\r\n", 0); st != "431 Request Header Fields Too Large" || !closed {
		t.Fatalf("oversized upgrade request: %q, closed %v", st, closed)
	}
	if st, closed := rawRequest(t, e, "GET /ws HTTP/1.1\r\nConnection: close\r\n\r\n", 0); st != "400 Bad Request" || !closed {
		t.Fatalf("HTTP/1.1 upgrade request without Host: %q, closed %v", st, closed)
	}
	if st, _ := rawRequest(t, e, "GET /wsx HTTP/1.1\r\nHost: x\r\n\r\n", 0); st != "404 Not Found" {
		t.Fatalf("/wsx: %q, want net/http's 404", st)
	}
	v.connect(e, "u1", "d1") // and a real client still gets its welcome
}

// A frame the client sends right behind its upgrade request, in the same
// write, is read as the session's first frame.
func TestUpgradeKeepsBytesAfterTheRequest(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	ping := maskedText(`{"t":"ping"}`)
	req := "GET /ws?token=" + v.token("u1", "d1", time.Hour) + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write(append([]byte(req), ping...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	for seen := 0; seen < 4; seen++ { // welcome, then the pong for the early ping
		b, err := readServerFrame(br)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"pong"`) {
			return
		}
	}
	t.Fatal("no pong for the ping sent with the upgrade request")
}

// A request for another path than /ws gets the handshake timeout once in
// all: the time the listener spent on its first bytes counts toward the
// server's header timeout, not before it.
func TestUpgradeListenerSlowRequestTimesOutOnce(t *testing.T) {
	v := newEnv(t)
	const limit = 600 * time.Millisecond
	e := v.startEdge("", func(c *wsedge.Config) { c.HandshakeTimeout = limit })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// a server of its own, with a header timeout far above the edge's
	srv := &http.Server{Handler: e, ConnContext: e.ConnContext, ReadHeaderTimeout: 20 * limit}
	go srv.Serve(e.Listener(ln, nil))
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "GET /hea"); err != nil { // 8 bytes: not /ws, handed on at once
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(15 * limit))
	_, err = io.Copy(io.Discard, c) // net/http answers 408 or just closes
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection was still open after %v: the server's header timeout started over", took)
	}
	if took < limit/2 {
		t.Fatalf("closed after %v, before the handshake timeout %v", took, limit)
	}
}

// Closing the listener ends its handshake workers, also one waiting for a
// client that connected and sent nothing, and the server's Serve returns.
func TestUpgradeListenerCloseEndsWorkers(t *testing.T) {
	t.Cleanup(func() { leakcheck.VerifyNone(t) })
	v := newEnv(t)
	e := v.startEdge("", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: e, ConnContext: e.ConnContext}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.Listener(ln, nil)) }()
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := dial(t, "ws://"+ln.Addr().String()+"/ws", v.token("u1", "d1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f["t"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", f)
	}
	c.conn.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v with a silent client: the worker waited for its request", d)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("the silent client's connection is still open")
	}
	e.stop()
}

// maskedText is a client's text frame (FIN, masked with a zero key).
func maskedText(payload string) []byte {
	return append([]byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// readServerFrame reads one unmasked server frame of up to 64 KiB and
// returns its payload.
func readServerFrame(br *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return nil, err
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		if _, err := io.ReadFull(br, l[:]); err != nil {
			return nil, err
		}
		n = int(l[0])<<8 | int(l[1])
	}
	b := make([]byte, n)
	_, err := io.ReadFull(br, b)
	return b, err
}

// A listener closed before its server ever called Accept returns at once,
// and its Accept then fails.
func TestUpgradeListenerClosedBeforeServe(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := e.Listener(ln, nil)
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a listener never served did not return")
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
