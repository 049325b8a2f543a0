package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var secret = []byte("test-secret-0123456789abcdefghijklmnop")

func clock() time.Time { return t0 }

// testKeys are generated once per test binary (RSA is slow under -race).
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec, ec2   *ecdsa.PrivateKey
	ed, ed2   ed25519.PrivateKey
}

var keys = sync.OnceValue(func() testKeys {
	var k testKeys
	k.rsa = must(rsa.GenerateKey(rand.Reader, 2048))
	k.rsa2 = must(rsa.GenerateKey(rand.Reader, 2048))
	k.ec = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	k.ec2 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	_, k.ed = must2(ed25519.GenerateKey(rand.Reader))
	_, k.ed2 = must2(ed25519.GenerateKey(rand.Reader))
	return k
})

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// pemBytes encodes a public key as a PKIX "PUBLIC KEY" block.
func pemBytes(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writePEM(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	return writeFile(t, t.TempDir(), "key.pem", pemBytes(t, pub))
}

// jwkOf is the JWK form of a public key.
func jwkOf(kid string, pub crypto.PublicKey) map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b := must(k.Bytes())
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
	}
	panic("unsupported key")
}

func jwksBytes(t testing.TB, jwks ...map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": jwks})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// good is a valid payload at t0.
func good() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":    "42",
		"tenant": "acme",
		"device": "phone",
		"topics": []string{"news", "deals.*"},
		"iat":    t0.Unix(),
		"exp":    t0.Add(time.Hour).Unix(),
	}
}

// with returns good() changed by kv pairs; a nil value deletes the claim.
func with(kv ...any) jwt.MapClaims {
	c := good()
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, k)
		} else {
			c[k] = kv[i+1]
		}
	}
	return c
}

// sign signs claims with method and key, setting kid when not empty.
func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clock
	}
	v, err := auth.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// allVerifier accepts HS256 and one key of every asymmetric algorithm.
func allVerifier(t testing.TB) *auth.Verifier {
	k := keys()
	return newVerifier(t, auth.Config{
		HS256Secret: secret,
		KeyFiles:    []string{writePEM(t, &k.rsa.PublicKey), writePEM(t, &k.ec.PublicKey), writePEM(t, k.ed.Public())},
	})
}
