package wsedge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/ratelimit"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

// logBuffer collects an edge's log lines for a test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// closeWith dials and returns the close code and reason the edge ends
// the connection with.
func closeWith(t *testing.T, rawURL, token string, opts *websocket.DialOptions) (websocket.StatusCode, string) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	q := u.Query()
	q.Set("token", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, u.String(), opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			t.Fatalf("read: %v (no close frame)", err)
		}
	}
}

// A refused token's close reason names the kind of fault, never what the
// server expects: no issuer, audience or key id of its configuration.
func TestTokenRefusalRevealsNoConfiguration(t *testing.T) {
	v := newEnv(t)
	const issuer, audience = "https://issuer.internal.example", "herald-internal-audience"
	ver, err := auth.New(auth.Config{HS256Secret: secret, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	e := v.startEdge("", func(c *wsedge.Config) {
		c.Verifier = ver
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	for _, claims := range []jwt.MapClaims{
		{"sub": "u1", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix()},
		{"sub": "u1", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix(), "iss": "someone-else", "aud": audience},
		{"sub": "u1", "tenant": "acme", "exp": time.Now().Add(time.Hour).Unix(), "iss": issuer, "aud": "other"},
	} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		code, reason := closeWith(t, e.url, tok, nil)
		if code != wsedge.StatusUnauthorized {
			t.Fatalf("claims %v: code %d, want 4001", claims, code)
		}
		if strings.Contains(reason, issuer) || strings.Contains(reason, audience) || strings.Contains(reason, "internal") {
			t.Fatalf("close reason %q reveals the configuration", reason)
		}
		if strings.Contains(logs.String(), tok) {
			t.Fatal("the token was logged")
		}
	}
	eventually(t, "audit lines for the refusals", func() bool {
		return strings.Count(logs.String(), "reason=bad_token") == 3
	})
}

// The audit log is rate-limited per reason: a flood of bad tokens makes a
// bounded number of lines, and the next line after the flood says how many
// were left out.
func TestAuditLogIsRateLimited(t *testing.T) {
	v := newEnv(t)
	logs := &logBuffer{}
	e := v.startEdge("", func(c *wsedge.Config) { c.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	for range 60 {
		if code := dialCode(t, e.url, "garbage"); code != wsedge.StatusUnauthorized {
			t.Fatalf("code %d", code)
		}
	}
	if n := strings.Count(logs.String(), "reason=bad_token"); n < 1 || n > 40 {
		t.Fatalf("%d audit lines for 60 refusals, want between 1 and 40 (20 per second)", n)
	}
}

// Redis frozen while a client connects: its set-up is bounded, and it gets
// 1013 (try again later) with a reason instead of waiting in silence.
func TestRedisDownAtConnectGets1013(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.SetupTimeout = 500 * time.Millisecond })
	v.connect(e, "warm", "d") // the edge works
	if err := v.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.redis.Resume() })
	start := time.Now()
	code, reason := closeWith(t, e.url, v.token("u1", "d", time.Hour), nil)
	if code != wsedge.StatusTryAgain || reason == "" {
		t.Fatalf("close %d %q, want 1013 with a reason", code, reason)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("1013 after %v; the set-up timeout is 500ms", took)
	}
	if err := v.redis.Resume(); err != nil {
		t.Fatal(err)
	}
	v.connect(e, "u2", "d") // and works again
}

// While the breaker is open, a new client gets 1013 at once: the edge does
// not try Redis for it.
func TestBreakerOpenRefusesNewSessionsAtOnce(t *testing.T) {
	v := newEnv(t)
	b, err := ratelimit.NewBreaker(ratelimit.BreakerConfig{ErrorCount: 2, MinRequests: 2,
		StatInterval: 2 * time.Second, RetryTimeout: time.Minute, SlowCall: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	edgeRDB := redis.NewClient(&redis.Options{Addr: v.redis.Addr(), ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { edgeRDB.Close() })
	rdb := v.rdb
	v.rdb = edgeRDB
	e := v.startEdge("", func(c *wsedge.Config) {
		c.Breaker = b
		c.PresenceTTL = 600 * time.Millisecond
		c.SetupTimeout = 20 * time.Second // so that only the breaker can explain a quick 1013
	})
	v.rdb = rdb
	if err := v.redis.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.redis.Resume() })
	eventually(t, "breaker open", func() bool { return b.IsOpen("edge.heartbeat") })
	start := time.Now()
	code, _ := closeWith(t, e.url, v.token("u1", "d", time.Hour), nil)
	if code != wsedge.StatusTryAgain {
		t.Fatalf("close %d, want 1013", code)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("1013 after %v, want it at once", took)
	}
}

func TestConcurrentConnectionsPerAddressAreCapped(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.MaxConnsPerIP = 3 })
	var held []*client
	for i := range 3 {
		held = append(held, v.connect(e, "u"+string(rune('a'+i)), "d"))
	}
	if code := dialCode(t, e.url, v.token("ud", "d", time.Hour)); code != wsedge.StatusTooMany {
		t.Fatalf("4th connection from one address: %d, want 4029", code)
	}
	held[0].conn.Close(websocket.StatusNormalClosure, "")
	eventually(t, "a slot freed", func() bool { return e.Sessions() == 2 })
	v.connect(e, "ud", "d")
}

// xffDial dials with an X-Forwarded-For header.
func xffDial(xff string) *websocket.DialOptions {
	return &websocket.DialOptions{HTTPHeader: http.Header{"X-Forwarded-For": {xff}}}
}

func TestTrustedProxyForwardedFor(t *testing.T) {
	v := newEnv(t)
	trustedEdge := v.startEdge("", func(c *wsedge.Config) {
		c.MaxConnsPerIP = 1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	plainEdge := v.startEdge("", func(c *wsedge.Config) { c.MaxConnsPerIP = 1 })
	hold := func(e *edge, user, xff string) (*websocket.Conn, error) {
		c, _, err := websocket.Dial(context.Background(), e.url+"?token="+v.token(user, "d", time.Hour), xffDial(xff))
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.CloseNow() })
		_, b, err := c.Read(context.Background())
		if err != nil || !bytes.Contains(b, []byte(`"welcome"`)) {
			return nil, errors.New("no welcome")
		}
		return c, nil
	}
	// Behind the trusted balancer, two clients are two addresses; the
	// client cannot hide behind a forged first hop either.
	if _, err := hold(trustedEdge, "u1", "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := hold(trustedEdge, "u2", "6.6.6.6, 198.51.100.2"); err != nil {
		t.Fatalf("second client address refused: %v", err)
	}
	if code, _ := closeWith(t, trustedEdge.url, v.token("u3", "d", time.Hour), xffDial("198.51.100.1")); code != wsedge.StatusTooMany {
		t.Fatalf("same forwarded address: %d, want 4029", code)
	}
	// From a peer that is not trusted, the header is the client's word and
	// is ignored: both are the same address.
	if _, err := hold(plainEdge, "u1", "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if code, _ := closeWith(t, plainEdge.url, v.token("u2", "d", time.Hour), xffDial("198.51.100.2")); code != wsedge.StatusTooMany {
		t.Fatalf("untrusted X-Forwarded-For was believed: %d, want 4029", code)
	}
}

// proxyDial dials through a connection that starts with a PROXY header.
func proxyDial(header []byte) *websocket.DialOptions {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(header); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}}
	return &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
}

func proxyV2(src netip.Addr) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11) // v2 PROXY, TCP over IPv4
	b = binary.BigEndian.AppendUint16(b, 12)
	s := src.As4()
	b = append(b, s[:]...)
	b = append(b, 127, 0, 0, 1, 0x13, 0x88, 0x00, 0x50)
	return b
}

func TestTrustedProxyProtocolHeader(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) {
		c.MaxConnsPerIP = 1
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	open := func(user string, header []byte) websocket.StatusCode {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, e.url+"?token="+v.token(user, "d", time.Hour), proxyDial(header))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.CloseNow() })
		_, b, err := c.Read(ctx)
		if err == nil && bytes.Contains(b, []byte(`"welcome"`)) {
			return 0
		}
		return websocket.CloseStatus(err)
	}
	if code := open("u1", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n")); code != 0 {
		t.Fatalf("v1 header: %d", code)
	}
	if code := open("u2", proxyV2(netip.MustParseAddr("203.0.113.8"))); code != 0 {
		t.Fatalf("v2 header, another client: %d", code)
	}
	if code := open("u3", proxyV2(netip.MustParseAddr("203.0.113.7"))); code != wsedge.StatusTooMany {
		t.Fatalf("v2 header naming the first client again: %d, want 4029", code)
	}
	if code := open("u4", nil); code != 0 { // the balancer's own connection, no header
		t.Fatalf("no header from a trusted peer: %d", code)
	}
}

// A refresh with narrower topics ends the subscriptions the new token
// does not allow, with a forbidden error frame, and keeps the others.
func TestRefreshEndsTopicsTheNewTokenForbids(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", nil)
	c, err := dial(t, e.url, v.token("u1", "d", time.Hour, "news", "sports"))
	if err != nil {
		t.Fatal(err)
	}
	c.next()
	channel := func(topic string) string { return keys.Space{}.FeedChannel(keys.TopicFeed("acme", topic)) }
	subs := func(topic string) int64 {
		n, _ := v.rdb.PubSubNumSub(context.Background(), channel(topic)).Result()
		return n[channel(topic)]
	}
	c.send(`{"t":"sub","topic":"news"}`)
	c.send(`{"t":"sub","topic":"sports"}`)
	eventually(t, "subscribed", func() bool { return subs("news") == 1 && subs("sports") == 1 })
	c.send(`{"t":"refresh","token":"` + v.token("u1", "d", time.Hour, "news") + `"}`)
	m := c.next()
	if m["t"] != "error" || m["code"] != "forbidden" || !strings.Contains(m["msg"].(string), "sports") {
		t.Fatalf("got %v, want a forbidden error naming sports", m)
	}
	eventually(t, "sports unsubscribed", func() bool { return subs("sports") == 0 })
	v.publish(keys.TopicFeed("acme", "sports"), 1, nil)
	v.publish(keys.TopicFeed("acme", "news"), 1, nil)
	if ns := c.notifications(1); ns[0].Feed != "topic:news" {
		t.Fatalf("got %v after the refresh, want only news", ns[0])
	}
}

// Closed-session records are pruned after the retention, on the edge's
// own schedule.
func TestClosedSessionRecordsArePruned(t *testing.T) {
	v := newEnv(t)
	e := v.startEdge("", func(c *wsedge.Config) { c.ClosedRetention = 200 * time.Millisecond })
	for i := range 5 {
		c := v.connect(e, "u"+string(rune('a'+i)), "d")
		c.conn.Close(websocket.StatusNormalClosure, "")
	}
	eventually(t, "sessions closed", func() bool { return e.Sessions() == 0 })
	eventually(t, "closed records pruned", func() bool {
		closed, err := e.store.RecentlyClosed(0)
		return err == nil && len(closed) == 0
	})
}
