package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldrt/herald/wsedge/auth"
)

// tokenKeys are the keys of the token test: the edges accept HS256 with
// secret and RS256 with rsaKey's public half (a PEM file).
type tokenKeys struct {
	rsaKey   *rsa.PrivateKey
	otherKey *rsa.PrivateKey // a key the edges do not know
	pubPEM   []byte
	pemPath  string
}

func newTokenKeys(t *testing.T) *tokenKeys {
	t.Helper()
	k := &tokenKeys{}
	var err error
	if k.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	k.pemPath = filepath.Join(t.TempDir(), "rs256.pem")
	if err := os.WriteFile(k.pemPath, k.pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return k
}

// sign signs claims with method and key; it fails the test on error.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// badToken is a connection attempt and the close code it must get (0: it
// must be welcomed).
type badToken struct {
	name   string
	token  string
	header bool // send it as Authorization: Bearer
	code   websocket.StatusCode
}

func badTokens(t *testing.T, k *tokenKeys) []badToken {
	now := time.Now()
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "a-tok", "tenant": "acme", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
		if mut != nil {
			mut(c)
		}
		return c
	}
	hs := func(mut func(jwt.MapClaims)) string { return sign(t, jwt.SigningMethodHS256, secret, claims(mut)) }
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a-tok","tenant":"acme","exp":4102444800}`)) + "."
	return []badToken{
		{"valid HS256 (control)", hs(nil), false, 0},
		{"valid RS256 (control)", sign(t, jwt.SigningMethodRS256, k.rsaKey, claims(nil)), false, 0},
		{"valid, in the Authorization header (control)", hs(nil), true, 0},
		{"no token", "", false, 4001},
		{"garbage", "not.a.jwt", false, 4001},
		{"expired", hs(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), false, 4004},
		{"alg none", none, false, 4001},
		{"HS256 signed with the RSA public key (HS/RS confusion)", sign(t, jwt.SigningMethodHS256, k.pubPEM, claims(nil)), false, 4001},
		{"RS256 signed with an unknown key", sign(t, jwt.SigningMethodRS256, k.otherKey, claims(nil)), false, 4001},
		{"HS256 with the wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long!!"), claims(nil)), false, 4001},
		{"RS384, not configured", sign(t, jwt.SigningMethodRS384, k.rsaKey, claims(nil)), false, 4001},
		{"missing tenant", hs(func(c jwt.MapClaims) { delete(c, "tenant") }), false, 4001},
		{"missing sub", hs(func(c jwt.MapClaims) { delete(c, "sub") }), false, 4001},
		{"missing exp", hs(func(c jwt.MapClaims) { delete(c, "exp") }), false, 4001},
		{"tenant with bad characters", hs(func(c jwt.MapClaims) { c["tenant"] = "ac/me" }), false, 4001},
		{"nbf an hour ahead", hs(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), false, 4001},
		{"tampered payload", tamper(hs(nil)), false, 4001},
	}
}

// tamper swaps the payload of a signed token for one naming another user.
func tamper(token string) string {
	i := strings.IndexByte(token, '.')
	j := i + 1 + strings.IndexByte(token[i+1:], '.')
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","tenant":"acme","exp":4102444800}`))
	return token[:i+1] + payload + token[j:]
}

// TestBadTokens tries every kind of bad token against edges that accept
// HS256 and RS256 (from a PEM file) during traffic: each attempt gets the
// close code of the contract (4001, or 4004 for an expired token), valid
// tokens of both kinds are welcomed, a topic outside the token's claim is
// forbidden, a topic subscription sees its own tenant's events only, and
// the fleet loses nothing.
func TestBadTokens(t *testing.T) {
	k := newTokenKeys(t)
	scenario{
		name:        "bad-tokens",
		undisturbed: true,
		cluster:     clusterConfig{edgeEnv: []string{"HERALD_JWT_KEYS=" + k.pemPath}},
		fault: func(r *run) {
			r.at(2 * time.Second)
			for i, bt := range badTokens(r.t, k) {
				checkToken(r, r.c.edges[i%len(r.c.edges)], bt)
			}
			checkTopicIsolation(r)
		},
	}.run(t)
}

func checkToken(r *run, e *edge, bt badToken) {
	t := r.t
	tok, hdr := bt.token, http.Header(nil)
	if bt.header {
		tok, hdr = "", http.Header{"Authorization": {"Bearer " + bt.token}}
	}
	p, err := dialProbe(context.Background(), e.url(), tok, hdr, nil)
	if err != nil {
		t.Errorf("%s: dial: %v", bt.name, err)
		return
	}
	defer p.close()
	f, err := p.next(10 * time.Second)
	switch {
	case bt.code == 0 && (err != nil || f.T != "welcome"):
		t.Errorf("%s: got %+v, %v; want welcome", bt.name, f, err)
	case bt.code != 0 && err == nil:
		t.Errorf("%s: got %+v; want close %d", bt.name, f, bt.code)
	case bt.code != 0 && websocket.CloseStatus(err) != bt.code:
		t.Errorf("%s: %v; want close %d", bt.name, err, bt.code)
	}
}

// checkTopicIsolation subscribes a globex device to newsTopic, which acme
// devices follow too, and checks it only ever sees globex's events; a
// topic its token does not list is refused.
func checkTopicIsolation(r *run) {
	t := r.t
	tok, err := auth.Mint(secret, auth.Claims{Subject: "g-probe", Tenant: "globex", Device: "d", Topics: []string{newsTopic}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dialProbe(context.Background(), r.c.edges[0].url(), tok, nil, nil)
	if err != nil {
		t.Fatalf("topic probe: %v", err)
	}
	defer p.close()
	if f, err := p.next(10 * time.Second); err != nil || f.T != "welcome" {
		t.Fatalf("topic probe: first frame %+v, %v", f, err)
	}
	if err := p.text(`{"t":"sub","topic":"deals"}`); err != nil {
		t.Fatal(err)
	}
	if f, err := p.next(10 * time.Second); err != nil || f.T != "error" || f.Code != "forbidden" {
		t.Errorf("sub to a topic outside the token: got %+v, %v; want error forbidden", f, err)
	}
	if err := p.text(`{"t":"sub","topic":"` + newsTopic + `"}`); err != nil {
		t.Fatal(err)
	}
	var got []frame
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
		f, _, err := p.read(time.Until(end))
		if err != nil {
			break
		}
		if f.T == "n" {
			got = append(got, f)
		}
	}
	// The publisher records a batch once Redis answered; wait for that
	// before looking events up.
	last := int64(0)
	for _, f := range got {
		last = max(last, f.Data.E)
	}
	eventually(t, 10*time.Second, "the ledger to record the probe's events", func() bool { return int64(r.led.published()) >= last })
	r.led.mu.Lock()
	defer r.led.mu.Unlock()
	topic := 0
	for _, f := range got {
		desc := r.led.describe(f.Data.E)
		if !strings.HasPrefix(desc, "globex to ") || f.Feed == "topic:"+newsTopic && desc != "globex to topic:"+newsTopic {
			t.Errorf("globex subscriber of %s got %s event %d (%s)", newsTopic, f.Feed, f.Data.E, desc)
		}
		if f.Feed == "topic:"+newsTopic {
			topic++
		}
	}
	t.Logf("topic probe: %d globex %s events in 3s, none of another tenant", topic, newsTopic)
}

// TestTokenInLeewayIsWelcomedThenClosed: the verifier accepts a token up to
// its leeway (30s) past exp at connect, and the edge's session expiry check
// applies the same leeway, so a token that expired 10s ago is not welcomed
// only to be closed with 4004 at once. (Either consistent outcome passes:
// refused with 4004 at connect, or a session that lives on with the
// leeway.)
func TestTokenInLeewayIsWelcomedThenClosed(t *testing.T) {
	c := startCluster(t, clusterConfig{edges: 1, edgeArgs: []string{"--heartbeat", "2s"}})
	tok, err := auth.Mint(secret, auth.Claims{Subject: "a-late", Tenant: "acme", Expires: time.Now().Add(-10 * time.Second)}, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dialProbe(context.Background(), c.edges[0].url(), tok, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	f, err := p.next(5 * time.Second)
	if websocket.CloseStatus(err) == wsTokenExpired {
		return // refused at connect: consistent
	}
	if err != nil || f.T != "welcome" {
		t.Fatalf("first frame %+v, %v; want welcome or close 4004", f, err)
	}
	// Welcomed: the session must then live with the leeway (the edge
	// checks expiry every 400ms with --heartbeat 2s).
	if code := p.closeCode(3 * time.Second); code != 0 {
		t.Fatalf("welcomed with a token inside the leeway, then closed with %d within 3s", code)
	}
}

// wsTokenExpired is close code 4004.
const wsTokenExpired websocket.StatusCode = 4004
