package auth_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// TestReloadFilesAndURL: Reload re-reads the files and re-fetches the URL;
// a bad file changes nothing and is named, a failed fetch keeps the URL's
// keys and still installs the new files'.
func TestReloadFilesAndURL(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	file := writeFile(t, dir, "key.pem", pemBytes(t, &k.ec.PublicKey))
	srv := startJWKS(t, jwksBytes(t, jwkOf("u1", k.ed.Public())))
	v := jwksVerifier(t, srv.url, nil, func(c *auth.Config) { c.KeyFiles = []string{file} })
	fileTok := es(t, "", k.ec)
	file2Tok := es(t, "", k.ec2)
	u1 := sign(t, jwt.SigningMethodEdDSA, k.ed, "u1", good())
	u2 := sign(t, jwt.SigningMethodEdDSA, k.ed2, "u2", good())
	mustVerify(t, v, "file key", fileTok)
	mustVerify(t, v, "URL key", u1)
	if got := v.Algorithms(); !slices.Equal(got, []string{"ES256", "EdDSA"}) {
		t.Errorf("Algorithms() = %v", got)
	}

	writeFile(t, dir, "key.pem", []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"))
	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("u2", k.ed2.Public()))})
	err := v.Reload()
	var kfe *auth.KeyFileError
	if !errors.As(err, &kfe) || kfe.File != file {
		t.Fatalf("Reload with a bad file: %v, want a KeyFileError naming %s", err, file)
	}
	mustVerify(t, v, "file key after a bad file", fileTok)
	mustVerify(t, v, "URL key after a bad file", u1)
	wantHits(t, srv, 1, "a bad file stops Reload before the fetch")

	writeFile(t, dir, "key.pem", pemBytes(t, &k.ec2.PublicKey))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	wantHits(t, srv, 2, "after Reload")
	mustVerify(t, v, "new file key", file2Tok)
	mustRefuse(t, v, "old file key", fileTok, "signature is invalid")
	mustVerify(t, v, "new URL key", u2)

	srv.serve(jwksResponse{status: http.StatusServiceUnavailable})
	writeFile(t, dir, "key.pem", pemBytes(t, &k.ec.PublicKey))
	err = v.Reload()
	var je *auth.JWKSError
	if !errors.As(err, &je) || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("Reload with the URL down: %v, want a JWKSError", err)
	}
	mustVerify(t, v, "file key installed while the URL is down", fileTok)
	mustVerify(t, v, "URL key of the last good fetch", u2)
}

// TestJWKSKidInFileAndURL: a kid both a key file and the URL hold must name
// the same key (pinning a key locally); another key is refused, at New and
// at a refresh, which keeps the keys.
func TestJWKSKidInFileAndURL(t *testing.T) {
	k := keys()
	file := writeFile(t, t.TempDir(), "jwks.json", jwksBytes(t, jwkOf("a", &k.ec.PublicKey)))
	srv := startJWKS(t, jwksBytes(t, jwkOf("a", &k.ec.PublicKey), jwkOf("b", &k.ec2.PublicKey)))
	v := jwksVerifier(t, srv.url, nil, func(c *auth.Config) { c.KeyFiles = []string{file} })
	mustVerify(t, v, "kid a", es(t, "a", k.ec))
	mustVerify(t, v, "kid b", es(t, "b", k.ec2))

	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("a", &k.ec2.PublicKey))})
	err := v.Reload()
	var kfe *auth.KeyFileError
	if !errors.As(err, &kfe) || kfe.File != file || !strings.Contains(err.Error(), `kid "a" is also served by `+srv.url+" with another key") {
		t.Fatalf("Reload: %v, want a KeyFileError naming %s and the URL", err, file)
	}
	mustVerify(t, v, "kid a after the refused refresh", es(t, "a", k.ec))
	mustVerify(t, v, "kid b after the refused refresh", es(t, "b", k.ec2))

	_, err = auth.New(auth.Config{KeyFiles: []string{file}, JWKSURL: srv.url})
	if !errors.As(err, &kfe) || kfe.File != file {
		t.Fatalf("New: %v, want a KeyFileError naming %s", err, file)
	}
}

// TestVerifierClose: Close stops fetching, is safe twice, and Verify keeps
// the keys it has. (TestMain checks that no goroutine is left.)
func TestVerifierClose(t *testing.T) {
	k := keys()
	srv := startJWKS(t, jwksBytes(t, jwkOf("old", &k.ec.PublicKey)))
	v := jwksVerifier(t, srv.url, nil, nil)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, v, "old key after Close", es(t, "old", k.ec))
	srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey))})
	mustRefuse(t, v, "unknown kid after Close", es(t, "new", k.ec2), `no ES256 key with kid "new"`)
	wantHits(t, srv, 1, "after Close")

	plain := newVerifier(t, auth.Config{HS256Secret: secret})
	plain.Close()
	plain.Close()
	mustVerify(t, plain, "HS256 after Close", sign(t, jwt.SigningMethodHS256, secret, "", good()))
}
