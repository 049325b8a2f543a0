package main

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/wsedge/auth"
)

// devRun is a herald dev running in this process.
type devRun struct {
	logs    syncBuffer
	listen  string // public listener, host:port
	console string // dev console listener, host:port ("" without one)
}

// startDev runs herald dev with args on its own redis-server until the
// test ends, and waits for its "edge ready" line. One at a time: the rate
// limiter is one per process.
func startDev(t *testing.T, args ...string) *devRun {
	t.Helper()
	for _, k := range []string{secretEnv, secretEnv + "_FILE", "HERALD_JWT_KEYS", "HERALD_JWT_JWKS_URL"} {
		t.Setenv(k, "") // the run generates its secret
	}
	srv := redistest.Start(t)
	d := new(devRun)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append([]string{"--redis-url", srv.URL(), "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--data-dir", t.TempDir(), "--log-format", "json", "--drain-timeout", "2s"}, args...)
	go func() { done <- devMain(ctx, args, &d.logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald dev: %v", err)
		}
	})
	ready := regexp.MustCompile(`"msg":"edge ready".*?"listen":"([^"]+)"`)
	pollUntil(t, 15*time.Second, "herald dev's ready line", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("herald dev stopped before it was ready: %v\n%s", err, d.logs.String())
		default:
		}
		m := ready.FindStringSubmatch(d.logs.String())
		if m != nil {
			d.listen = m[1]
		}
		return m != nil
	})
	if m := regexp.MustCompile(`"msg":"dev console[^"]*".*?"url":"http://([^"/]+)/"`).FindStringSubmatch(d.logs.String()); m != nil {
		d.console = m[1]
	}
	return d
}

// oldDevSecret is the fixed secret herald dev used to fall back to.
const oldDevSecret = "herald-development-secret-do-not-use-in-production"

func TestDevConsole(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		d := startDev(t, "--http-idle-timeout", "300ms")
		if d.console != "" {
			t.Fatalf("a console without --dev-console: %s", d.console)
		}
		for _, path := range []string{"/dev/token?user=alice", "/"} {
			if code := getWith(t, "http://"+d.listen+path); code != 404 {
				t.Errorf("public listener GET %s: %d, want 404", path, code)
			}
		}
		if !strings.Contains(d.logs.String(), "generated a random one for this run") {
			t.Errorf("no log line about the generated secret:\n%s", d.logs.String())
		}
		if code := getWith(t, "http://"+d.listen+"/healthz", "X-Big", strings.Repeat("a", 20<<10)); code != 431 {
			t.Errorf("public listener, 20 KiB of headers: %d, want 431", code)
		}
		awaitIdleClose(t, d.listen, 300*time.Millisecond)
	})
	t.Run("on loopback with the flag", func(t *testing.T) {
		d := startDev(t, "--dev-console", "--dev-console-listen", "127.0.0.1:0")
		if d.console == "" || d.console == d.listen {
			t.Fatalf("console %q, public %q: want a listener of its own\n%s", d.console, d.listen, d.logs.String())
		}
		if code, body := httpGet(t, "http://"+d.console+"/"); code != 200 || !strings.Contains(body, "Herald notification centre") {
			t.Errorf("console page: %d", code)
		}
		if code, body := httpGet(t, "http://"+d.console+"/herald-client.js"); code != 200 || !strings.Contains(body, "class HeraldClient") {
			t.Errorf("the SDK on the console: %d", code)
		}
		// The admin panel's key publishes through the console's /v1/.
		_, key := httpGet(t, "http://"+d.console+"/dev/apikey")
		preq, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+d.console+"/v1/publish",
			strings.NewReader(`{"type":"order.placed","tenant":"acme","to":"user:alice","data":{}}`))
		preq.Header.Set("Authorization", "Bearer "+key)
		if resp, err := http.DefaultClient.Do(preq); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Errorf("publish with the console's key: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}
		if code := getWith(t, "http://"+d.listen+"/dev/apikey"); code != 404 {
			t.Errorf("public listener /dev/apikey: %d, want 404", code)
		}
		code, tok := httpGet(t, "http://"+d.console+"/dev/token?user=alice")
		if code != 200 || strings.Count(tok, ".") != 2 {
			t.Fatalf("console token: %d %q", code, tok)
		}
		if code := getWith(t, "http://"+d.listen+"/dev/token?user=alice"); code != 404 {
			t.Errorf("public listener /dev/token: %d, want 404", code)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+d.console+"/dev/token?user=alice", nil)
		req.Host = "attacker.example:8081" // DNS rebinding
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("console asked for another host: %v %v, want 421", resp.StatusCode, err)
		} else {
			resp.Body.Close()
		}
		// The edge upgrades /ws itself, still behind the console's host
		// check: a rebound page (Host and Origin both the attacker's) gets
		// no session.
		wreq, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+d.console+"/ws?token="+tok, nil)
		wreq.Host = "attacker.example:8081"
		wreq.Header.Set("Origin", "http://attacker.example:8081")
		wreq.Header.Set("Connection", "Upgrade")
		wreq.Header.Set("Upgrade", "websocket")
		wreq.Header.Set("Sec-WebSocket-Version", "13")
		wreq.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if resp, err := http.DefaultClient.Do(wreq); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("console /ws asked for another host: %v %v, want 421", resp, err)
		} else {
			resp.Body.Close()
		}
		// The console's token opens a session on the console's own /ws,
		// as the page does; it is not signed with the old fixed secret.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws://"+d.console+"/ws?device=browser&token="+tok, nil)
		if err != nil {
			t.Fatalf("console /ws: %v", err)
		}
		defer c.CloseNow()
		if _, msg, err := c.Read(ctx); err != nil || !strings.Contains(string(msg), `"welcome"`) {
			t.Fatalf("console /ws first frame: %s, %v", msg, err)
		}
		old, err := auth.New(auth.Config{HS256Secret: []byte(oldDevSecret)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Verify(tok); err == nil {
			t.Error("the console's token verifies with the old fixed development secret")
		}
	})
}

func TestDevConsoleRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"all interfaces", nil, []string{"--dev-console", "--dev-console-listen", ":8081"}, "not loopback"},
		{"unspecified", nil, []string{"--dev-console", "--dev-console-listen", "0.0.0.0:0"}, "not loopback"},
		{"public address", nil, []string{"--dev-console", "--dev-console-listen", "192.0.2.1:8081"}, "not loopback"},
		{"host name", nil, []string{"--dev-console", "--dev-console-listen", "herald.example:8081"}, "not loopback"},
		{"operator's secret", nil, []string{"--dev-console", "--jwt-hs256-secret", oldDevSecret}, "generated"},
		{"operator's secret in env", map[string]string{secretEnv: oldDevSecret}, []string{"--dev-console"}, "generated"},
		{"operator's keys", nil, []string{"--dev-console", "--jwt-keys", "keys.pem"}, "generated"},
		{"operator's JWKS", nil, []string{"--dev-console", "--jwt-jwks-url", "https://idp.example/jwks.json"}, "generated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			err := devMain(t.Context(), append([]string{"--redis-url", "redis://127.0.0.1:1/0"}, tc.args...), io.Discard)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%v, want a one-line usage error saying %q", err, tc.want)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8081": true, "127.1.2.3:0": true, "[::1]:8081": true, "localhost:8081": true, "LOCALHOST:1": true,
		":8081": false, "0.0.0.0:8081": false, "[::]:8081": false, "10.0.0.1:8081": false, "herald.example:80": false,
		"127.0.0.1": false, "": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestDevSecretIsRandom(t *testing.T) {
	a, b := newDevSecret(), newDevSecret()
	if a == b || a == oldDevSecret {
		t.Fatalf("two generated secrets: %q and %q", a, b)
	}
	if raw, err := hex.DecodeString(a); err != nil || len(raw) != 32 {
		t.Fatalf("generated secret %q: %d bytes, %v; want 32 random bytes", a, len(raw), err)
	}
}
