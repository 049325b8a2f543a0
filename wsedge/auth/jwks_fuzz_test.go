package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"testing"
	"time"
)

// FuzzParseJWKS feeds arbitrary documents to the JWKS parser, as a key file
// and as a fetch of the JWKS URL (seed corpus in testdata/fuzz/FuzzParseJWKS).
// It must never panic; the URL's reading accepts whatever the strict one
// does; every key either returns has a kid, fits its algorithm, builds a
// key set, and reads back the same from its own JWK form.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"OKP","kid":"o","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"","y":""},{"use":"enc"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		strict, err := parseJWKS(data)
		if err != nil && strict != nil {
			t.Fatalf("error %v with %d keys", err, len(strict))
		}
		// The JWKS URL's reading: unusable keys are left out, not fatal.
		lenient, lerr := parseJWKSSkipping(data, func(int, string, error) {})
		if err == nil && (lerr != nil || len(lenient) != len(strict)) {
			t.Fatalf("strict read %d keys, the URL's read %d keys, %v", len(strict), len(lenient), lerr)
		}
		for _, k := range lenient {
			if alg, err := algFor(k.key); k.kid == "" || err != nil || alg != k.alg || !keyFits(k.alg, k.key) {
				t.Fatalf("accepted key %q %s %T: algFor %q, %v", k.kid, k.alg, k.key, alg, err)
			}
			again, err := parseJWKS(jwkDoc(t, k))
			if err != nil || len(again) != 1 || again[0].kid != k.kid || again[0].alg != k.alg || !sameKey(again[0].key, k.key) {
				t.Fatalf("key %q does not read back: %v", k.kid, err)
			}
		}
		if _, err := combine(nil, lenient); err == nil && len(lenient) > 0 {
			if _, err := newKeySet(lenient); err != nil {
				t.Fatalf("newKeySet: %v", err)
			}
		}
	})
}

// jwkDoc is a JWKS holding k alone.
func jwkDoc(t *testing.T, k verifyKey) []byte {
	b64 := base64.RawURLEncoding.EncodeToString
	var j map[string]string
	switch p := k.key.(type) {
	case *rsa.PublicKey:
		j = map[string]string{"kty": "RSA", "n": b64(p.N.Bytes()), "e": b64(big.NewInt(int64(p.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		j = map[string]string{"kty": "EC", "crv": "P-256", "x": b64(b[1:33]), "y": b64(b[33:])}
	case ed25519.PublicKey:
		j = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": b64(p)}
	default:
		t.Fatalf("key of type %T", k.key)
	}
	j["kid"] = k.kid
	b, err := json.Marshal(map[string]any{"keys": []any{j}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzCacheLifetime: whatever the Cache-Control and Age headers say, the
// lifetime stays within the bounds.
func FuzzCacheLifetime(f *testing.F) {
	for _, s := range [][2]string{
		{"max-age=300", ""}, {"public, max-age=600", "500"}, {"no-store", ""}, {`max-age="60"`, "x"},
		{"max-age=99999999999999999999", "1"}, {"max-age=-1", ""}, {"MAX-AGE = 5", ""}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	const lo, hi = time.Minute, 24 * time.Hour
	f.Fuzz(func(t *testing.T, cc, age string) {
		h := http.Header{"Cache-Control": {cc}, "Age": {age}}
		if d := cacheLifetime(h, lo, hi); d < lo || d > hi {
			t.Fatalf("Cache-Control %q, Age %q: lifetime %v outside [%v, %v]", cc, age, d, lo, hi)
		}
		if d, ok := maxAge(h); ok && d < 0 {
			t.Fatalf("Cache-Control %q, Age %q: max-age %v", cc, age, d)
		}
	})
}

func TestNoDowngrade(t *testing.T) {
	req := func(u string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	https, http2 := req("https://id.example/jwks"), req("http://id.example/jwks")
	if err := noDowngrade(http2, []*http.Request{https}); err == nil {
		t.Error("followed a redirect from https to http")
	}
	if err := noDowngrade(req("https://cdn.example/jwks"), []*http.Request{https}); err != nil {
		t.Errorf("https to https: %v", err)
	}
	if err := noDowngrade(https, []*http.Request{http2}); err != nil {
		t.Errorf("http to https: %v", err)
	}
}
