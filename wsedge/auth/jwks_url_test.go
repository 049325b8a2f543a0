package auth_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/wsedge/auth"
)

// TestJWKSURLUnknownKidRefetch: the identity provider rotates its key; the
// first token of the new kid makes the Verifier fetch the JWKS again, and
// the removed key's tokens are then refused without another fetch.
func TestJWKSURLUnknownKidRefetch(t *testing.T) {
	k := keys()
	srv := startJWKS(t, jwksBytes(t, jwkOf("old", &k.ec.PublicKey)))
	v := jwksVerifier(t, srv.url, nil, nil)
	mustVerify(t, v, "old key", es(t, "old", k.ec))
	wantHits(t, srv, 1, "after New")

	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey))})
	mustVerify(t, v, "new key after rotation", es(t, "new", k.ec2))
	wantHits(t, srv, 2, "after the first token of the new kid")
	mustVerify(t, v, "new key again", es(t, "new", k.ec2))
	mustRefuse(t, v, "old key after rotation", es(t, "old", k.ec), `no ES256 key with kid "old"`)
	wantHits(t, srv, 2, "after a token of the removed kid (rate-limited)")
	if got := v.Algorithms(); !slices.Equal(got, []string{"ES256"}) {
		t.Errorf("Algorithms() = %v", got)
	}
}

// TestJWKSURLScheduledRefresh: with a short max-age the refresher picks up
// the rotation by itself; unknown-kid fetches are held off so that only the
// schedule can have brought the new key.
func TestJWKSURLScheduledRefresh(t *testing.T) {
	k := keys()
	srv := startJWKS(t, jwksBytes(t, jwkOf("old", &k.ec.PublicKey)))
	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey)), header: map[string]string{"Cache-Control": "public, max-age=0"}})
	v := jwksVerifier(t, srv.url, nil, func(c *auth.Config) {
		c.JWKSMinRefresh = 20 * time.Millisecond
		c.JWKSRefetchInterval = time.Hour
	})
	newTok := es(t, "new", k.ec2)
	mustRefuse(t, v, "new key before rotation", newTok, `no ES256 key with kid "new"`) // spends the one unknown-kid fetch

	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey)), header: map[string]string{"Cache-Control": "max-age=0"}})
	eventually(t, "a scheduled refresh to bring the new key", func() bool {
		_, err := v.Verify(newTok)
		return err == nil
	})
	mustRefuse(t, v, "old key after rotation", es(t, "old", k.ec), `no ES256 key with kid "old"`)
}

// TestJWKSURLUnknownKidFlood: many tokens with unknown kids at once cause
// one fetch, which every waiting Verify shares; the next flood causes none.
func TestJWKSURLUnknownKidFlood(t *testing.T) {
	k := keys()
	srv := startJWKS(t, jwksBytes(t, jwkOf("old", &k.ec.PublicKey)))
	v := jwksVerifier(t, srv.url, nil, nil)
	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey), jwkOf("new", &k.ec2.PublicKey))})
	newTok := es(t, "new", k.ec2)
	bogus := make([]string, 16)
	for i := range bogus {
		bogus[i] = es(t, fmt.Sprintf("bogus-%d", i), k.ec2)
	}

	release := srv.holdRequests()
	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok := newTok
			if i%2 == 1 {
				tok = bogus[i%len(bogus)]
			}
			_, errs[i] = v.Verify(tok)
		})
	}
	eventually(t, "the refetch to reach the server", func() bool { return srv.hits.Load() == 2 })
	release()
	wg.Wait()
	for i, err := range errs {
		switch {
		case i%2 == 0 && err != nil:
			t.Errorf("token %d of the new kid refused: %v", i, err)
		case i%2 == 1 && (err == nil || !strings.Contains(err.Error(), "no ES256 key with kid \"bogus-")):
			t.Errorf("token %d of a bogus kid: %v, want refused for its kid", i, err)
		}
	}
	wantHits(t, srv, 2, "after the first flood")

	for i := range n {
		wg.Go(func() { v.Verify(bogus[i%len(bogus)]) })
	}
	wg.Wait()
	wantHits(t, srv, 2, "after a second flood within the refetch interval")
}

// TestJWKSURLBadRefreshKeepsKeys: whatever is wrong with a refresh, the keys
// of the last good fetch stay in use and Reload says what went wrong.
func TestJWKSURLBadRefreshKeepsKeys(t *testing.T) {
	k := keys()
	good := jwksBytes(t, jwkOf("old", &k.ec.PublicKey))
	huge := []byte(`{"keys":[],"pad":"` + strings.Repeat("x", auth.MaxJWKSBytes) + `"}`)
	private := jwkOf("old", &k.ec.PublicKey)
	private["d"] = "AAAA"
	cases := []struct {
		name string
		resp jwksResponse
		want string
	}{
		{"server error", jwksResponse{status: http.StatusInternalServerError, body: good}, "GET: status 500 Internal Server Error"},
		{"not found", jwksResponse{status: http.StatusNotFound}, "GET: status 404 Not Found"},
		{"HTML", jwksResponse{body: []byte("<html>login</html>")}, "JWKS: invalid character '<'"},
		{"truncated JSON", jwksResponse{body: good[:len(good)/2]}, "JWKS: unexpected end of JSON input"},
		{"no keys array", jwksResponse{body: []byte(`{"error":"busy"}`)}, `JWKS: no "keys" array`},
		{"empty key set", jwksResponse{body: []byte(`{"keys":[]}`)}, "holds no signing key"},
		{"encryption keys only", jwksResponse{body: jwksBytes(t, map[string]string{"kty": "RSA", "use": "enc", "kid": "e"})}, "holds no signing key"},
		{"private key material", jwksResponse{body: jwksBytes(t, private)}, "holds private or secret key material"},
		{"one kid, two keys", jwksResponse{body: jwksBytes(t, jwkOf("a", &k.ec.PublicKey), jwkOf("a", &k.ec2.PublicKey))}, `kid "a" names two different keys`},
		{"oversized, with length", jwksResponse{body: huge, length: true}, "body is larger than 1048576 bytes"},
		{"oversized, chunked", jwksResponse{body: huge}, "body is larger than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startJWKS(t, good)
			v := jwksVerifier(t, srv.url, nil, nil)
			srv.serve(tc.resp)
			err := v.Reload()
			var je *auth.JWKSError
			if !errors.As(err, &je) || je.URL != srv.url || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload: %v, want a JWKSError for %s saying %q", err, srv.url, tc.want)
			}
			mustVerify(t, v, "old key after a bad refresh", es(t, "old", k.ec))
			// An unknown kid's refetch fails the same way and keeps the keys too.
			mustRefuse(t, v, "unknown kid", es(t, "x", k.ec2), `no ES256 key with kid "x"`)
			mustVerify(t, v, "old key after a bad refetch", es(t, "old", k.ec))
			wantHits(t, srv, 3, "New, Reload, refetch")
		})
	}
}

// TestNewRefusesJWKSURL: New fails, saying why, when the first fetch does or
// the settings make no sense.
func TestNewRefusesJWKSURL(t *testing.T) {
	k := keys()
	good := jwksBytes(t, jwkOf("a", &k.ec.PublicKey))
	srv := startJWKS(t, good)
	dead := startJWKS(t, good)
	deadURL := dead.url
	dead.close() // nothing listens on its port now
	cases := []struct {
		name  string
		cfg   auth.Config
		resp  jwksResponse
		want  string
		fetch bool // the error is a JWKSError
	}{
		{"not found", auth.Config{JWKSURL: srv.url}, jwksResponse{status: 404}, "GET: status 404 Not Found", true},
		{"oversized", auth.Config{JWKSURL: srv.url}, jwksResponse{body: make([]byte, auth.MaxJWKSBytes+1)}, "body is larger than 1048576 bytes", true},
		{"garbage", auth.Config{JWKSURL: srv.url}, jwksResponse{body: []byte("hello")}, "JWKS: invalid character", true},
		{"connection refused", auth.Config{JWKSURL: deadURL}, jwksResponse{body: good}, "connection refused", true},
		{"ftp", auth.Config{JWKSURL: "ftp://id.example/jwks"}, jwksResponse{body: good}, `JWKS URL "ftp://id.example/jwks": want an absolute https or http URL`, false},
		{"relative", auth.Config{JWKSURL: "/jwks.json"}, jwksResponse{body: good}, "want an absolute https or http URL", false},
		{"min above max", auth.Config{JWKSURL: srv.url, JWKSMinRefresh: time.Hour, JWKSMaxRefresh: time.Minute}, jwksResponse{body: good}, "JWKS min refresh 1h0m0s is above max refresh 1m0s", false},
		{"negative", auth.Config{JWKSURL: srv.url, JWKSRefetchInterval: -1}, jwksResponse{body: good}, "must not be negative", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv.serve(tc.resp)
			v, err := auth.New(tc.cfg)
			if err == nil {
				v.Close()
				t.Fatal("New accepted it")
			}
			var je *auth.JWKSError
			if !strings.Contains(err.Error(), tc.want) || errors.As(err, &je) != tc.fetch {
				t.Errorf("New: %v, want saying %q (a JWKSError: %v)", err, tc.want, tc.fetch)
			}
			if tc.fetch && (je.URL != tc.cfg.JWKSURL || !strings.HasPrefix(err.Error(), "JWKS URL "+tc.cfg.JWKSURL+": ")) {
				t.Errorf("error %q does not name %s", err, tc.cfg.JWKSURL)
			}
		})
	}
}

// TestJWKSURLSkipsUnusableKeys: keys of the URL that cannot verify tokens
// (another curve, a weak RSA key, no kid, a symmetric key without its
// secret) are left out and logged once, not fatal, so that a provider may
// publish keys for other services; key files stay strict.
func TestJWKSURLSkipsUnusableKeys(t *testing.T) {
	k := keys()
	weak := must(rsaKey(1024))
	noKid := jwkOf("", k.ed.Public())
	delete(noKid, "kid")
	p384JWK := jwkOf("p", &k.ec.PublicKey)
	p384JWK["crv"] = "P-384"
	doc := jwksBytes(t, jwkOf("good", &k.ec.PublicKey), p384JWK, jwkOf("weak", &weak.PublicKey), noKid,
		map[string]string{"kty": "oct", "kid": "s"})
	srv := startJWKS(t, doc)
	var logs syncBuffer
	v := jwksVerifier(t, srv.url, nil, func(c *auth.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	mustVerify(t, v, "the usable key", es(t, "good", k.ec))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	got := logs.String()
	for _, want := range []string{`kid \"p\"): crv \"P-384\" is not supported`, `kid \"weak\"): RSA key of 1024 bits`, `kid \"\"): no kid`, `kid \"s\"): symmetric keys`} {
		if !strings.Contains(got, want) {
			t.Errorf("logs do not say %s:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "JWKS keys left out"); n != 1 {
		t.Errorf("%d log lines of left-out keys for two identical fetches, want 1:\n%s", n, got)
	}

	file := writeFile(t, t.TempDir(), "jwks.json", doc)
	if _, err := auth.New(auth.Config{KeyFiles: []string{file}}); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Errorf("key file with an unusable key: %v, want refused", err)
	}
}
