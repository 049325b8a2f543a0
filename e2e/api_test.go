package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

// The HTTP API (contracts section 6) against real edges, a real dispatcher
// and a real redis-server.

const (
	apiKeyAll  = "key-all-0123456789abcdef"
	apiKeyAcme = "key-acme-0123456789abcdef"
)

// apiCluster starts one dispatcher and two edges serving the API with two
// service keys: one for every tenant, one bound to acme.
func apiCluster(t *testing.T, edgeArgs ...string) *cluster {
	t.Helper()
	file := filepath.Join(t.TempDir(), "api-keys")
	keys := "# name key tenant\nops " + apiKeyAll + " *\nacme-backoffice " + apiKeyAcme + " acme\n"
	if err := os.WriteFile(file, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	return startCluster(t, clusterConfig{dispatchers: 1, edges: 2,
		edgeArgs: append([]string{"--api-keys", file}, edgeArgs...)})
}

// apiAnswer is a decoded answer.
type apiAnswer struct {
	status int
	body   map[string]any
	raw    []byte
}

// errField returns error.<name> of an error answer.
func (a apiAnswer) errField(name string) any {
	e, _ := a.body["error"].(map[string]any)
	return e[name]
}

// call sends one request to edge e's API with a bearer credential ("" for
// none) and a JSON body (nil for none; a []byte is sent as it is).
func call(t *testing.T, e *edge, method, path, bearer string, body any) apiAnswer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, "http://"+e.listen+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := plainHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := apiAnswer{status: resp.StatusCode, raw: raw}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: %d, not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return a
}

func userToken(t *testing.T, tenant, user, device string) string {
	claims := jwt.MapClaims{"sub": user, "tenant": tenant, "exp": time.Now().Add(time.Hour).Unix()}
	if device != "" {
		claims["device"] = device
	}
	return sign(t, jwt.SigningMethodHS256, secret, claims)
}

func event(typ, tenant, to string, n int) map[string]any {
	return map[string]any{"type": typ, "tenant": tenant, "to": to, "data": map[string]any{"n": n}, "id": fmt.Sprintf("%s-%s-%d", tenant, to, n)}
}

// waitUnreadFrame reads p's frames until an unread frame with count comes.
func waitUnreadFrame(t *testing.T, p *probe, count int, who string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, raw, err := p.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: waiting for unread %d: %v", who, count, err)
		}
		var f struct {
			T     string `json:"t"`
			Count *int   `json:"count"`
		}
		json.Unmarshal(raw, &f)
		if f.T == "unread" && f.Count != nil && *f.Count == count {
			return
		}
	}
	t.Fatalf("%s: no unread frame with count %d", who, count)
}

// dialUser connects a device of a user to edge e and waits for welcome.
func dialUser(t *testing.T, e *edge, tenant, user, device string) *probe {
	t.Helper()
	p, err := dialProbe(t.Context(), e.url(), userToken(t, tenant, user, device), nil, nil)
	if err != nil {
		t.Fatalf("dial %s/%s/%s: %v", tenant, user, device, err)
	}
	t.Cleanup(func() { p.conn.CloseNow() })
	if f, err := p.next(5 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("%s/%s/%s: first frame %+v, %v", tenant, user, device, f, err)
	}
	return p
}

// TestAPIInbox publishes 200 notifications to a user and 50 to the
// tenant through POST /v1/publish/batch, pages through the inbox, and
// marks read in each form with the user's two devices on two edges.
func TestAPIInbox(t *testing.T) {
	c := apiCluster(t)
	e1, e2 := c.edges[0], c.edges[1]
	phone := dialUser(t, e1, "acme", "u1", "phone")
	laptop := dialUser(t, e2, "acme", "u1", "laptop")

	var batch []map[string]any
	for n := 1; n <= 250; n++ {
		if n%5 == 0 {
			batch = append(batch, event("news.posted", "acme", "tenant", n))
		} else {
			batch = append(batch, event("order.placed", "acme", "user:u1", n))
		}
	}
	// one for the phone only: the laptop's inbox leaves it out
	only := event("order.shipped", "acme", "user:u1", 999)
	only["device"] = "phone"
	batch = append(batch, only)
	a := call(t, e1, "POST", "/v1/publish/batch", apiKeyAcme, map[string]any{"events": batch})
	if a.status != 202 || len(a.body["stream_ids"].([]any)) != 251 {
		t.Fatalf("batch publish: %d %s", a.status, a.raw)
	}
	// The batch arrives on the live sockets: 250 on the laptop, 251 on the
	// phone (the last is the phone's alone).
	for _, d := range []struct {
		p    *probe
		name string
		want int
	}{{laptop, "laptop", 250}, {phone, "phone", 251}} {
		got := map[string]bool{}
		for len(got) < d.want {
			f, _, err := d.p.read(20 * time.Second)
			if err != nil {
				t.Fatalf("%s: %d of %d notifications, then %v", d.name, len(got), d.want, err)
			}
			if f.T == "n" {
				got[f.ID] = true
				d.p.conn.Write(t.Context(), websocket.MessageText, []byte(`{"t":"ack","id":"`+f.ID+`"}`))
			}
		}
	}
	laptopTok, phoneTok := userToken(t, "acme", "u1", "laptop"), userToken(t, "acme", "u1", "phone")
	eventually(t, 20*time.Second, "the inbox holds 250 for the laptop", func() bool {
		a := call(t, e2, "GET", "/v1/inbox/unread", laptopTok, nil)
		return a.status == 200 && a.body["unread"] == float64(250)
	})
	if a := call(t, e1, "GET", "/v1/inbox/unread", phoneTok, nil); a.body["unread"] != float64(251) {
		t.Fatalf("phone unread: %s", a.raw)
	}

	// Pages of 40 through everything: no duplicates, no gaps, newest first
	// within each feed.
	items := pageAll(t, e2, laptopTok, "limit=40")
	if len(items) != 250 {
		t.Fatalf("laptop inbox: %d items, want 250", len(items))
	}
	seen := map[string]bool{}
	lastSeq := map[string]float64{"user": 1e9, "tenant": 1e9}
	for _, it := range items {
		id := it["id"].(string)
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
		f, seq := it["feed"].(string), it["seq"].(float64)
		if seq >= lastSeq[f] {
			t.Fatalf("feed %s: seq %v after %v", f, seq, lastSeq[f])
		}
		lastSeq[f] = seq
		if it["read"] != false {
			t.Fatalf("%s read before anything was marked", id)
		}
	}
	if lastSeq["user"] != 1 || lastSeq["tenant"] != 1 {
		t.Fatalf("the oldest seqs listed: %v", lastSeq)
	}

	// ids: two read on the laptop; both devices see it, on both edges.
	ids := []string{items[0]["id"].(string), items[7]["id"].(string)}
	if a := call(t, e2, "POST", "/v1/inbox/read", laptopTok, map[string]any{"ids": ids}); a.status != 200 || a.body["unread"] != float64(248) {
		t.Fatalf("mark ids: %d %s", a.status, a.raw)
	}
	waitUnreadFrame(t, laptop, 248, "laptop")
	waitUnreadFrame(t, phone, 249, "phone")
	if a := call(t, e1, "GET", "/v1/inbox/unread", phoneTok, nil); a.body["unread"] != float64(249) {
		t.Fatalf("phone unread after ids: %s", a.raw)
	}
	unread := pageAll(t, e2, laptopTok, "limit=200&unread=true")
	if len(unread) != 248 || slices.ContainsFunc(unread, func(it map[string]any) bool { return it["id"] == ids[0] || it["id"] == ids[1] }) {
		t.Fatalf("unread=true: %d items", len(unread))
	}

	// up_to: the 100th newest and everything older.
	upTo := items[99]
	if a := call(t, e1, "POST", "/v1/inbox/read", phoneTok, map[string]any{"up_to": upTo["id"]}); a.status != 200 {
		t.Fatalf("mark up_to: %d %s", a.status, a.raw)
	}
	after := pageAll(t, e2, laptopTok, "limit=200")
	want := 0
	for i, it := range after {
		if it["id"] != items[i]["id"] {
			t.Fatalf("the listing changed order at %d", i)
		}
		if it["read"] == false {
			want++
		}
		older := it["feed"] == upTo["feed"] && it["seq"].(float64) <= upTo["seq"].(float64) ||
			it["feed"] != upTo["feed"] && it["ts"].(float64) <= upTo["ts"].(float64)
		if older && it["read"] != true {
			t.Fatalf("%s is older than up_to %s but not read", it["id"], upTo["id"])
		}
	}
	if want > 98 || want < 90 {
		t.Fatalf("after up_to the 100th newest: %d unread, want about 98", want)
	}
	waitUnreadFrame(t, laptop, want, "laptop")

	// all: nothing unread on either device.
	if a := call(t, e2, "POST", "/v1/inbox/read", laptopTok, map[string]any{"all": true}); a.status != 200 || a.body["unread"] != float64(0) {
		t.Fatalf("mark all: %d %s", a.status, a.raw)
	}
	waitUnreadFrame(t, laptop, 0, "laptop")
	waitUnreadFrame(t, phone, 0, "phone")
	if a := call(t, e1, "GET", "/v1/inbox?unread=true", phoneTok, nil); len(a.body["items"].([]any)) != 0 || a.body["next"] != nil {
		t.Fatalf("unread after all: %s", a.raw)
	}
}

// pageAll follows next from the first page to the last.
func pageAll(t *testing.T, e *edge, token, query string) []map[string]any {
	t.Helper()
	var out []map[string]any
	path := "/v1/inbox?" + query
	for range 100 {
		a := call(t, e, "GET", path, token, nil)
		if a.status != 200 {
			t.Fatalf("GET %s: %d %s", path, a.status, a.raw)
		}
		for _, it := range a.body["items"].([]any) {
			out = append(out, it.(map[string]any))
		}
		next, ok := a.body["next"].(string)
		if !ok {
			return out
		}
		path = "/v1/inbox?" + query + "&before=" + next
	}
	t.Fatal("more than 100 pages")
	return nil
}

// TestAPIPublishAndErrors checks that a publish arrives on a live socket
// and every error status with its JSON body.
func TestAPIPublishAndErrors(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	doc := "version: 1\nrules:\n  - name: promo-publish\n    match: {type: \"promo.*\"}\n    per: tenant\n    limit: 1\n    interval: 1m\n    applies_to: [publish]\n"
	if err := os.WriteFile(rules, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c := apiCluster(t, "--rules", rules)
	e := c.edges[0]
	p := dialUser(t, e, "acme", "u2", "")

	a := call(t, e, "POST", "/v1/publish", apiKeyAll, event("order.placed", "acme", "user:u2", 1))
	if a.status != 202 || !strings.Contains(fmt.Sprint(a.body["stream_id"]), "-") {
		t.Fatalf("publish: %d %s", a.status, a.raw)
	}
	if f, _, err := p.read(10 * time.Second); err != nil || f.T != "n" || f.Seq != 1 {
		t.Fatalf("the published notification: %+v %v", f, err)
	}
	// A key bound to acme fills in the tenant.
	noTenant := event("order.placed", "", "user:u2", 2)
	delete(noTenant, "tenant")
	if a := call(t, e, "POST", "/v1/publish", apiKeyAcme, noTenant); a.status != 202 {
		t.Fatalf("publish without tenant on a bound key: %d %s", a.status, a.raw)
	}
	if f, _, err := p.read(10 * time.Second); err != nil || f.T != "n" || f.Seq != 2 {
		t.Fatalf("the second notification: %+v %v", f, err)
	}

	badTo := event("order.placed", "acme", "nobody", 3)
	big := []byte(`{"type":"a.b","tenant":"acme","to":"tenant","data":{"x":"` + strings.Repeat("x", 1<<20) + `"}}`)
	for _, tc := range []struct {
		name, method, path, key string
		body                    any
		status                  int
		code, field             string
		index                   any
	}{
		{"bad field", "POST", "/v1/publish", apiKeyAll, badTo, 400, "invalid", "to", nil},
		{"unknown field", "POST", "/v1/publish", apiKeyAll, map[string]any{"type": "a.b", "tenant": "acme", "to": "tenant", "data": map[string]any{}, "color": "red"}, 400, "invalid", "color", nil},
		{"data not an object", "POST", "/v1/publish", apiKeyAll, map[string]any{"type": "a.b", "tenant": "acme", "to": "tenant", "data": 3}, 400, "invalid", "data", nil},
		{"not JSON", "POST", "/v1/publish", apiKeyAll, []byte("{nope"), 400, "invalid", "", nil},
		{"batch index", "POST", "/v1/publish/batch", apiKeyAll, map[string]any{"events": []any{event("a.b", "acme", "tenant", 1), badTo}}, 400, "invalid", "to", float64(1)},
		{"empty batch", "POST", "/v1/publish/batch", apiKeyAll, map[string]any{"events": []any{}}, 400, "invalid", "events", nil},
		{"no key", "POST", "/v1/publish", "", event("a.b", "acme", "tenant", 1), 401, "unauthorized", "", nil},
		{"unknown key", "POST", "/v1/publish", "key-unknown-0123456789", event("a.b", "acme", "tenant", 1), 401, "unauthorized", "", nil},
		{"client token as a key", "GET", "/v1/online?tenant=acme", userToken(t, "acme", "u2", ""), nil, 401, "unauthorized", "", nil},
		{"bound key, other tenant", "POST", "/v1/publish", apiKeyAcme, event("a.b", "globex", "tenant", 1), 403, "forbidden", "tenant", nil},
		{"bound key, other tenant in a batch", "POST", "/v1/publish/batch", apiKeyAcme, map[string]any{"events": []any{event("a.b", "acme", "tenant", 1), event("a.b", "globex", "tenant", 1)}}, 403, "forbidden", "tenant", float64(1)},
		{"bound key, other tenant's presence", "GET", "/v1/presence?tenant=globex&user=u1", apiKeyAcme, nil, 403, "forbidden", "tenant", nil},
		{"inbox without a token", "GET", "/v1/inbox", "", nil, 401, "unauthorized", "", nil},
		{"inbox with a service key", "GET", "/v1/inbox", apiKeyAll, nil, 401, "unauthorized", "", nil},
		{"bad limit", "GET", "/v1/inbox?limit=500", userToken(t, "acme", "u2", ""), nil, 400, "invalid", "limit", nil},
		{"bad cursor", "GET", "/v1/inbox?before=%21%21", userToken(t, "acme", "u2", ""), nil, 400, "invalid", "before", nil},
		{"mark read: two forms", "POST", "/v1/inbox/read", userToken(t, "acme", "u2", ""), map[string]any{"all": true, "up_to": "x-1-user"}, 400, "invalid", "ids", nil},
		{"mark read: a topic's id", "POST", "/v1/inbox/read", userToken(t, "acme", "u2", ""), map[string]any{"ids": []string{"ep-1-topic:x"}}, 400, "invalid", "ids", nil},
		{"unknown path", "GET", "/v1/nothing", "", nil, 404, "not_found", "", nil},
		{"wrong method", "GET", "/v1/publish", apiKeyAll, nil, 405, "method_not_allowed", "", nil},
		{"too large", "POST", "/v1/publish", apiKeyAll, big, 413, "too_large", "", nil},
	} {
		a := call(t, e, tc.method, tc.path, tc.key, tc.body)
		if a.status != tc.status || a.errField("code") != tc.code || fmt.Sprint(a.errField("field")) != fmt.Sprint(orNil(tc.field)) ||
			a.errField("index") != tc.index || a.errField("message") == "" {
			t.Errorf("%s: %d %s, want %d %s field %q index %v", tc.name, a.status, a.raw, tc.status, tc.code, tc.field, tc.index)
		}
	}
	// Nothing of the refused events was appended: the socket got nothing more.
	if f, _, err := p.read(500 * time.Millisecond); err == nil {
		t.Fatalf("a refused publish was delivered: %+v", f)
	}

	// 429: the rule lets one promo a minute through for acme.
	if a := call(t, e, "POST", "/v1/publish", apiKeyAll, event("promo.spring", "acme", "tenant", 1)); a.status != 202 {
		t.Fatalf("first promo: %d %s", a.status, a.raw)
	}
	if a := call(t, e, "POST", "/v1/publish", apiKeyAll, event("promo.spring", "acme", "tenant", 2)); a.status != 429 || a.errField("code") != "rate_limited" {
		t.Fatalf("second promo: %d %s", a.status, a.raw)
	}
	if a := call(t, e, "POST", "/v1/publish", apiKeyAll, event("order.placed", "acme", "tenant", 5)); a.status != 202 {
		t.Fatalf("another type is not limited: %d %s", a.status, a.raw)
	}

	// 503: Redis is gone.
	if err := c.redis.Kill(); err != nil {
		t.Fatal(err)
	}
	if a := call(t, e, "POST", "/v1/publish", apiKeyAll, event("order.placed", "acme", "tenant", 6)); a.status != 503 || a.errField("code") != "unavailable" {
		t.Fatalf("publish with Redis down: %d %s", a.status, a.raw)
	}
	if a := call(t, e, "GET", "/v1/inbox/unread", userToken(t, "acme", "u2", ""), nil); a.status != 503 {
		t.Fatalf("inbox with Redis down: %d %s", a.status, a.raw)
	}
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestAPIPresenceAndOnline moves clients across two edges and checks that
// presence and the online counts follow.
func TestAPIPresenceAndOnline(t *testing.T) {
	c := apiCluster(t, "--presence-ttl", "3s")
	e1, e2 := c.edges[0], c.edges[1]
	online := func(users, conns int) {
		t.Helper()
		eventually(t, 10*time.Second, fmt.Sprintf("online %d users, %d connections", users, conns), func() bool {
			a := call(t, e2, "GET", "/v1/online?tenant=globex", apiKeyAll, nil)
			return a.status == 200 && a.body["users"] == float64(users) && a.body["connections"] == float64(conns)
		})
	}
	devices := func(user string) []string {
		t.Helper()
		a := call(t, e1, "GET", "/v1/presence?tenant=globex&user="+user, apiKeyAll, nil)
		if a.status != 200 {
			t.Fatalf("presence: %d %s", a.status, a.raw)
		}
		var out []string
		for _, d := range a.body["devices"].([]any) {
			m := d.(map[string]any)
			if m["since"].(float64) < float64(time.Now().Add(-time.Minute).UnixMilli()) {
				t.Fatalf("since %v", m["since"])
			}
			out = append(out, m["device"].(string)+"@"+m["edge"].(string))
		}
		return out
	}
	online(0, 0)
	a := dialUser(t, e1, "globex", "u3", "a")
	b := dialUser(t, e2, "globex", "u3", "b")
	dialUser(t, e1, "globex", "u4", "a")
	online(2, 3)
	if got := devices("u3"); !slices.Equal(got, []string{"a@e1", "b@e2"}) {
		t.Fatalf("u3's devices: %v", got)
	}
	a.conn.CloseNow() // gone without a close frame
	online(2, 2)
	if got := devices("u3"); !slices.Equal(got, []string{"b@e2"}) {
		t.Fatalf("u3's devices after a left: %v", got)
	}
	b.conn.Close(1000, "bye")
	online(1, 1)
	if got := devices("u3"); len(got) != 0 {
		t.Fatalf("u3's devices after all left: %v", got)
	}
	// A killed edge's sessions leave presence and the counts once a
	// survivor finds it dead.
	e1.kill()
	eventually(t, 20*time.Second, "the dead edge's sessions gone", func() bool {
		a := call(t, e2, "GET", "/v1/online?tenant=globex", apiKeyAll, nil)
		return a.body["users"] == float64(0) && a.body["connections"] == float64(0)
	})
}
