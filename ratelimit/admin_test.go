package ratelimit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/redistest"
)

// call sends one request and returns the status, body and headers.
func call(t *testing.T, srv *httptest.Server, method, token, body string, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+"/admin/rules", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestAdminHandler(t *testing.T) {
	store := NewStore(redistest.Start(t).Client(t), testSpace)
	mux := http.NewServeMux()
	mux.Handle("/admin/rules", AdminHandler(store, "s3cret"))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tok := range []string{"", "wrong", "s3cret2"} {
		if code, _, h := call(t, srv, "GET", tok, ""); code != 401 || h.Get("WWW-Authenticate") == "" {
			t.Fatalf("token %q: %d", tok, code)
		}
	}
	if code, _, _ := call(t, srv, "GET", "s3cret", ""); code != 404 {
		t.Fatalf("nothing stored: %d", code)
	}
	code, body, h := call(t, srv, "PUT", "s3cret", rulesV1, "X-Herald-Updated-By", "alice")
	if code != 200 || h.Get(HeaderVersion) != "1" || h.Get("ETag") != `"1"` || !strings.Contains(body, "applied version 1") {
		t.Fatalf("put: %d %q %v", code, body, h)
	}
	code, body, h = call(t, srv, "GET", "s3cret", "")
	if code != 200 || body != rulesV1 || h.Get("ETag") != `"1"` || h.Get(HeaderUpdatedBy) != "alice" ||
		h.Get(HeaderUpdatedAt) == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/yaml") {
		t.Fatalf("get: %d %q %v", code, body, h)
	}
	code, body, _ = call(t, srv, "PUT", "s3cret", rulesBad)
	if code != 400 || !strings.Contains(body, `line 7: rule "per-user": field interval: "0s" must be positive`) {
		t.Fatalf("invalid: %d %q", code, body)
	}
	if code, _, h = call(t, srv, "PUT", "s3cret", rulesV2, "If-Match", `"1"`); code != 200 || h.Get(HeaderVersion) != "2" {
		t.Fatalf("if-match current: %d", code)
	}
	code, body, h = call(t, srv, "PUT", "s3cret", rulesV1, "If-Match", `"1"`)
	if code != 409 || h.Get(HeaderVersion) != "2" || !strings.Contains(body, "expected version 1, now 2") {
		t.Fatalf("if-match stale: %d %q", code, body)
	}
	if code, _, _ = call(t, srv, "PUT", "s3cret", rulesV1, "If-Match", "seven"); code != 400 {
		t.Fatalf("bad if-match: %d", code)
	}
	if code, _, h = call(t, srv, "POST", "s3cret", rulesV1); code != 405 || h.Get("Allow") == "" {
		t.Fatalf("post: %d", code)
	}
	big := "version: 1\nrules: []\n#" + strings.Repeat("x", MaxDocumentSize)
	if code, _, _ = call(t, srv, "PUT", "s3cret", big); code != 413 {
		t.Fatalf("too big: %d", code)
	}
	if st, _ := store.Get(t.Context()); st.Meta.Version != 2 || string(st.YAML) != rulesV2 {
		t.Fatalf("store has %+v", st.Meta)
	}
}

func TestAdminHandlerOffWithoutToken(t *testing.T) {
	srv := httptest.NewServer(AdminHandler(nil, ""))
	defer srv.Close()
	for _, m := range []string{"GET", "PUT"} {
		if code, _, _ := call(t, srv, m, "anything", rulesV1); code != 404 {
			t.Fatalf("%s: %d", m, code)
		}
	}
}
