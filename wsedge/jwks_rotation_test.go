package wsedge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/wsedge"
	"github.com/heraldrt/herald/wsedge/auth"
)

// TestJWKSRotationKeepsSessions: the identity provider rotates its signing
// key while clients are connected. No live session is dropped, a token of
// the new kid connects (the edge fetches the JWKS again), both sessions get
// what is published afterwards, and a refresh frame is checked against the
// keys now in use.
func TestJWKSRotationKeepsSessions(t *testing.T) {
	v := newEnv(t)
	oldKey, newKey := ecKey(t), ecKey(t)
	idp := newRotatingJWKS(t, jwk("old", oldKey))
	ver, err := auth.New(auth.Config{JWKSURL: idp.url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ver.Close() })
	e := v.startEdge("", func(c *wsedge.Config) { c.Verifier = ver })

	const user = "rot-1"
	c1 := dialWelcome(t, e, esToken(t, oldKey, "old", user, "phone"))
	idp.set(jwk("new", newKey))
	c2 := dialWelcome(t, e, esToken(t, newKey, "new", user, "laptop"))
	if got := idp.hits.Load(); got != 2 {
		t.Errorf("%d JWKS fetches, want 2 (start, then the new kid)", got)
	}

	c1.send(`{"t":"ping"}`)
	if m := c1.next(); m["t"] != "pong" {
		t.Fatalf("session of the old key after the rotation: got %v, want pong", m)
	}
	v.publish(keys.UserFeed("acme", user), 1, nil)
	n1, n2 := c1.notifications(1)[0], c2.notifications(1)[0]
	if n1.ID != n2.ID {
		t.Errorf("sessions got notifications %s and %s, want the same", n1.ID, n2.ID)
	}

	c1.send(`{"t":"refresh","token":"` + esToken(t, oldKey, "old", user, "phone") + `"}`)
	if m := c1.next(); m["t"] != "error" || m["code"] != "bad_token" {
		t.Fatalf("refresh with the removed key: got %v, want a bad_token error", m)
	}
	c1.send(`{"t":"refresh","token":"` + esToken(t, newKey, "new", user, "phone") + `"}`)
	c1.send(`{"t":"ping"}`)
	if m := c1.next(); m["t"] != "pong" {
		t.Fatalf("after a refresh with the new key: got %v, want pong", m)
	}
}

// rotatingJWKS is an identity provider's JWKS endpoint on 127.0.0.1.
type rotatingJWKS struct {
	url  string
	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
}

func newRotatingJWKS(t *testing.T, jwks ...map[string]string) *rotatingJWKS {
	r := &rotatingJWKS{}
	r.set(jwks...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.hits.Add(1)
		r.mu.Lock()
		doc := r.doc
		r.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/.well-known/jwks.json"
	return r
}

func (r *rotatingJWKS) set(jwks ...map[string]string) {
	doc, _ := json.Marshal(map[string]any{"keys": jwks})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.doc = doc
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func jwk(kid string, k *ecdsa.PrivateKey) map[string]string {
	b, _ := k.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": b64(b[1:33]), "y": b64(b[33:])}
}

func esToken(t *testing.T, k *ecdsa.PrivateKey, kid, user, device string) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": user, "tenant": "acme", "device": device, "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func dialWelcome(t *testing.T, e *edge, token string) *client {
	t.Helper()
	c, err := dial(t, e.url, token)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.next(); f["t"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", f)
	}
	return c
}
