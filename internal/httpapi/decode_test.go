package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/httpapi"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

const (
	opsKey  = "ops-0123456789abcdef"
	acmeKey = "acme-0123456789abcdef"
)

type apiServer struct {
	srv   *httptest.Server
	rdb   *redis.Client
	token string // a client JWT of acme/u1, device phone
}

// newAPIServer serves an API over a real redis-server, with a key for every
// tenant (opsKey) and one bound to acme (acmeKey).
func newAPIServer(t *testing.T) *apiServer {
	t.Helper()
	rdb := redistest.Start(t).Client(t)
	ver, err := auth.New(auth.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ver.Close() })
	ks, err := httpapi.ParseKeys("test", []byte("ops "+opsKey+" *\nacme "+acmeKey+" acme\n"))
	if err != nil {
		t.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Redis: rdb, Verifier: ver, Keys: ks})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	tok, err := auth.Mint(secret, auth.Claims{Subject: "u1", Tenant: "acme", Device: "phone"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{srv: srv, rdb: rdb, token: tok}
}

// do sends a request and returns the status and body.
func (a *apiServer) do(t *testing.T, method, path, cred, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestTrailingDataRefused: a body is one JSON value and nothing after it.
// Before the fix a stray '}' or ']' after the object passed (dec.More
// reports false for a closing delimiter) and the event was appended.
func TestTrailingDataRefused(t *testing.T) {
	a := newAPIServer(t)
	ev := `{"type":"order.placed","tenant":"acme","to":"user:42","data":{"a":1}}`
	for _, tc := range []struct{ method, path, cred, body string }{
		{"POST", "/v1/publish", opsKey, ev + `}`},
		{"POST", "/v1/publish", opsKey, ev + ` ]`},
		{"POST", "/v1/publish", opsKey, ev + `{}`},
		{"POST", "/v1/publish/batch", opsKey, `{"events":[` + ev + `]}}`},
		{"POST", "/v1/inbox/read", a.token, `{"all":true}]`},
	} {
		status, body := a.do(t, tc.method, tc.path, tc.cred, tc.body)
		if status != http.StatusBadRequest || !strings.Contains(body, `"code":"invalid"`) {
			t.Errorf("%s %s %q: %d %s, want 400 invalid", tc.method, tc.path, tc.body, status, body)
		}
	}
	if n, err := a.rdb.XLen(t.Context(), keys.Space{}.Events()).Result(); err != nil || n != 0 {
		t.Errorf("ingest stream holds %d entries (%v), want none appended", n, err)
	}
	// Trailing white space is still fine.
	if status, body := a.do(t, "POST", "/v1/publish", opsKey, ev+" \n"); status != http.StatusAccepted {
		t.Errorf("event with trailing white space: %d %s, want 202", status, body)
	}
}
