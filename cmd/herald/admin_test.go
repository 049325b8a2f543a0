package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// getWith GETs url on a fresh connection with the headers given as name,
// value pairs and returns the status code. (A server reads up to 4 KiB of
// a keep-alive connection's next request before it applies the header
// limit to it.)
func getWith(t *testing.T, url string, headers ...string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func startTestAdmin(t *testing.T, o serverOptions) string {
	t.Helper()
	a, err := startAdmin("127.0.0.1:0", o, newRegistry(), nil, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(context.Background()) })
	return "http://" + a.Addr()
}

func TestAdminPprofNeedsToken(t *testing.T) {
	const token = "admin-token-for-pprof-tests"
	bearer := []string{"Authorization", "Bearer " + token}
	type check struct {
		path    string
		headers []string
		want    int
	}
	for _, tc := range []struct {
		name   string
		opts   serverOptions
		checks []check
	}{
		{"token", serverOptions{adminToken: token}, []check{
			{"/debug/pprof/", nil, 401},
			{"/debug/pprof/", []string{"Authorization", "Bearer wrong-" + token}, 401},
			{"/debug/pprof/", []string{"Authorization", token}, 401},
			{"/debug/pprof/", bearer, 200},
			{"/debug/pprof/goroutine?debug=1", nil, 401},
			{"/debug/pprof/goroutine?debug=1", bearer, 200},
			{"/debug/pprof/symbol", bearer, 200},
			{"/debug/pprof/cmdline", nil, 404},
			{"/debug/pprof/cmdline", bearer, 404},
			{"/metrics", nil, 200},
			{"/healthz", nil, 200},
		}},
		{"no token: no pprof", serverOptions{}, []check{
			{"/debug/pprof/", nil, 404},
			{"/debug/pprof/", []string{"Authorization", "Bearer "}, 404},
			{"/debug/pprof/profile?seconds=1", nil, 404},
			{"/debug/pprof/cmdline", nil, 404},
			{"/metrics", nil, 200},
		}},
		{"pprof without token on loopback", serverOptions{pprofWithoutToken: true}, []check{
			{"/debug/pprof/", nil, 200},
			{"/debug/pprof/cmdline", nil, 404},
		}},
		{"metrics require token", serverOptions{adminToken: token, metricsRequireToken: true}, []check{
			{"/metrics", nil, 401},
			{"/metrics", bearer, 200},
			{"/healthz", nil, 200},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startTestAdmin(t, tc.opts)
			for _, c := range tc.checks {
				if got := getWith(t, base+c.path, c.headers...); got != c.want {
					t.Errorf("GET %s with %q: %d, want %d", c.path, c.headers, got, c.want)
				}
			}
		})
	}
}

func TestAdminRefusesUnsafeSettings(t *testing.T) {
	for _, tc := range []struct {
		addr string
		opts serverOptions
		want string
	}{
		{"0.0.0.0:0", serverOptions{pprofWithoutToken: true}, "loopback"},
		{":0", serverOptions{pprofWithoutToken: true}, "loopback"},
		{"127.0.0.1:0", serverOptions{metricsRequireToken: true}, "--admin-token"},
	} {
		a, err := startAdmin(tc.addr, tc.opts, newRegistry(), nil, discardLogger())
		if err == nil {
			a.Close(context.Background())
		}
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("startAdmin(%q, %+v): %v, want a one-line usage error naming %s", tc.addr, tc.opts, err, tc.want)
		}
	}
}

// TestHTTPLimits checks the limits on the admin server; the public and
// dev console servers are built by the same function (see TestDevConsole).
func TestHTTPLimits(t *testing.T) {
	base := startTestAdmin(t, serverOptions{idleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(base, "http://")
	if code := getWith(t, base+"/healthz", "X-Big", strings.Repeat("a", 20<<10)); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("20 KiB of headers: %d, want 431", code)
	}
	if code := getWith(t, base+"/healthz", "X-Small", strings.Repeat("a", 8<<10)); code != 200 {
		t.Errorf("8 KiB of headers: %d, want 200", code)
	}
	awaitIdleClose(t, addr, 300*time.Millisecond)
}

// awaitIdleClose makes one keep-alive request on a fresh connection to
// addr and waits, with a read deadline, for the server to close it.
func awaitIdleClose(t *testing.T, addr string, idle time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("keep-alive request: %d, close %v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	c.SetReadDeadline(start.Add(idle + 10*time.Second))
	n, err := r.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d bytes, %v after %v; want the server to close it (EOF) after %v",
			n, err, time.Since(start).Round(time.Millisecond), idle)
	}
}
