package auth_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

func TestVerifyAcceptsEachAlgorithm(t *testing.T) {
	k := keys()
	cases := []struct {
		alg    string
		cfg    auth.Config
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", auth.Config{HS256Secret: secret}, jwt.SigningMethodHS256, secret},
		{"RS256", auth.Config{KeyFiles: []string{writePEM(t, &k.rsa.PublicKey)}}, jwt.SigningMethodRS256, k.rsa},
		{"ES256", auth.Config{KeyFiles: []string{writePEM(t, &k.ec.PublicKey)}}, jwt.SigningMethodES256, k.ec},
		{"EdDSA", auth.Config{KeyFiles: []string{writePEM(t, k.ed.Public())}}, jwt.SigningMethodEdDSA, k.ed},
	}
	all := allVerifier(t)
	for _, tc := range cases {
		t.Run(tc.alg, func(t *testing.T) {
			v := newVerifier(t, tc.cfg)
			if got := v.Algorithms(); !slices.Equal(got, []string{tc.alg}) {
				t.Errorf("Algorithms() = %v, want [%s]", got, tc.alg)
			}
			tok := sign(t, tc.method, tc.key, "", with("nbf", t0.Add(-time.Minute).Unix(), "iss", "https://id.example"))
			for name, v := range map[string]*auth.Verifier{"own key": v, "all keys": all} {
				c, err := v.Verify(tok)
				if err != nil {
					t.Fatalf("%s: Verify: %v", name, err)
				}
				want := auth.Claims{
					Subject: "42", Tenant: "acme", Device: "phone", Topics: []string{"news", "deals.*"},
					Expires: t0.Add(time.Hour), IssuedAt: t0, NotBefore: t0.Add(-time.Minute), Issuer: "https://id.example",
				}
				if c.String() != want.String() || !c.IssuedAt.Equal(want.IssuedAt) || !c.NotBefore.Equal(want.NotBefore) || c.Issuer != want.Issuer {
					t.Errorf("%s: claims = %+v, want %+v", name, c, want)
				}
			}
		})
	}
}

// TestVerifyRefuses covers every way a token fails: each error matches its
// sentinel (and not the other one) and says what is wrong.
func TestVerifyRefuses(t *testing.T) {
	k := keys()
	all := allVerifier(t)
	rsaPEM := pemBytes(t, &k.rsa.PublicKey)
	rsaOnly := newVerifier(t, auth.Config{KeyFiles: []string{writeFile(t, t.TempDir(), "rsa.pem", rsaPEM)}})
	strict := newVerifier(t, auth.Config{HS256Secret: secret, Issuer: "https://id.example", Audience: "herald"})
	hs := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good())
	cases := []struct {
		name  string
		v     *auth.Verifier
		token string
		want  error
		msg   string
	}{
		{"expired", all, hs(with("exp", t0.Add(-time.Hour).Unix())), auth.ErrExpired, "token expired at 2026-03-01T11:00:00Z"},
		{"expired beyond leeway", all, hs(with("exp", t0.Add(-31*time.Second).Unix())), auth.ErrExpired, "token expired at 2026-03-01T11:59:29Z"},
		{"alg none", all, none, auth.ErrInvalid, `token invalid: algorithm "none" is not accepted`},
		{"alg none unsigned", all, strings.TrimSuffix(none, ".") + ".", auth.ErrInvalid, `algorithm "none" is not accepted`},
		{"HS/RS confusion, RSA only", rsaOnly, sign(t, jwt.SigningMethodHS256, rsaPEM, "", good()), auth.ErrInvalid, `algorithm "HS256" is not accepted`},
		{"HS/RS confusion, HS configured", all, sign(t, jwt.SigningMethodHS256, rsaPEM, "", good()), auth.ErrInvalid, "token invalid: signature is invalid"},
		{"alg not configured", rsaOnly, sign(t, jwt.SigningMethodES256, k.ec, "", good()), auth.ErrInvalid, `algorithm "ES256" is not accepted`},
		{"HS512", all, sign(t, jwt.SigningMethodHS512, secret, "", good()), auth.ErrInvalid, `algorithm "HS512" is not accepted`},
		{"wrong RSA key", all, sign(t, jwt.SigningMethodRS256, k.rsa2, "", good()), auth.ErrInvalid, "token invalid: signature is invalid"},
		{"wrong EC key", all, sign(t, jwt.SigningMethodES256, k.ec2, "", good()), auth.ErrInvalid, "token invalid: signature is invalid"},
		{"wrong Ed key", all, sign(t, jwt.SigningMethodEdDSA, k.ed2, "", good()), auth.ErrInvalid, "token invalid: signature is invalid"},
		{"wrong secret", all, sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefghij"), "", good()), auth.ErrInvalid, "signature is invalid"},
		{"missing tenant", all, hs(with("tenant", nil)), auth.ErrInvalid, "token invalid: claim tenant is missing"},
		{"missing sub", all, hs(with("sub", nil)), auth.ErrInvalid, "token invalid: claim sub is missing"},
		{"missing exp", all, hs(with("exp", nil)), auth.ErrInvalid, "token invalid: claim exp is missing"},
		{"bad tenant chars", all, hs(with("tenant", "ac me")), auth.ErrInvalid, `token invalid: claim tenant "ac me" is not a tenant id`},
		{"bad sub chars", all, hs(with("sub", "a/b")), auth.ErrInvalid, `claim sub "a/b" is not a user id`},
		{"bad device", all, hs(with("device", "ph one")), auth.ErrInvalid, `claim device "ph one" is not a device id`},
		{"bad topic glob", all, hs(with("topics", []string{"news", "deals.["})), auth.ErrInvalid, `claim topics entry "deals.[" is not a topic name or glob`},
		{"bad topic chars", all, hs(with("topics", []string{"a b"})), auth.ErrInvalid, `claim topics entry "a b"`},
		{"topics not a list", all, hs(with("topics", "news")), auth.ErrInvalid, "token invalid: malformed: could not JSON decode claim"},
		{"exp not a number", all, hs(with("exp", "tomorrow")), auth.ErrInvalid, "token invalid: malformed: could not JSON decode claim"},
		{"expired and missing tenant", all, hs(with("exp", t0.Add(-time.Hour).Unix(), "tenant", nil)), auth.ErrInvalid, "claim tenant is missing"},
		{"future nbf", all, hs(with("nbf", t0.Add(time.Minute).Unix())), auth.ErrInvalid, "token invalid: token not valid yet (nbf 2026-03-01T12:01:00Z)"},
		{"wrong iss", strict, hs(with("iss", "https://evil.example", "aud", "herald")), auth.ErrInvalid, `token invalid: claim iss is "https://evil.example", want "https://id.example"`},
		{"missing iss", strict, hs(with("aud", "herald")), auth.ErrInvalid, "token invalid: claim iss is missing"},
		{"wrong aud", strict, hs(with("iss", "https://id.example", "aud", []string{"other", "x"})), auth.ErrInvalid, `token invalid: claim aud does not include "herald"`},
		{"missing aud", strict, hs(with("iss", "https://id.example")), auth.ErrInvalid, "token invalid: claim aud is missing"},
		{"malformed: two segments", all, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9", auth.ErrInvalid, "token invalid: malformed: token contains an invalid number of segments"},
		{"malformed: header not JSON", all, "bm90IGpzb24.eyJzdWIiOiI0MiJ9.c2ln", auth.ErrInvalid, "token invalid: malformed: could not JSON decode header"},
		{"malformed: bad base64", all, "e$$.e.e", auth.ErrInvalid, "token invalid: malformed: could not base64 decode header"},
		{"garbage", all, "garbage", auth.ErrInvalid, "token invalid: malformed"},
		{"empty", all, "", auth.ErrInvalid, "token invalid: empty token"},
		{"too long", all, strings.Repeat("a", auth.MaxTokenLen+1), auth.ErrInvalid, "token invalid: longer than 8192 bytes"},
		{"unknown alg", all, "eyJhbGciOiJYWDEiLCJ0eXAiOiJKV1QifQ.eyJzdWIiOiI0MiJ9.c2ln", auth.ErrInvalid, "token invalid: unverifiable: signing method (alg) is unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.v.Verify(tc.token)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not match %v", err, tc.want)
			}
			other := map[error]error{auth.ErrInvalid: auth.ErrExpired, auth.ErrExpired: auth.ErrInvalid}[tc.want]
			if errors.Is(err, other) {
				t.Errorf("error %q matches %v too", err, other)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if c.Subject != "" || c.Tenant != "" {
				t.Errorf("refused token returned claims %+v", c)
			}
		})
	}
}

func TestVerifyKeepsJWTError(t *testing.T) {
	v := allVerifier(t)
	_, err := v.Verify(sign(t, jwt.SigningMethodRS256, keys().rsa2, "", good()))
	if !errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		t.Errorf("error %q does not wrap jwt.ErrTokenSignatureInvalid", err)
	}
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefghij"), "", good()))
	if err == nil || err.Error() != "token invalid: signature is invalid" {
		t.Errorf("wrong HMAC secret: %v, want exactly %q", err, "token invalid: signature is invalid")
	}
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, "", with("exp", t0.Add(-time.Hour).Unix())))
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("error %q does not wrap jwt.ErrTokenExpired", err)
	}
}

func TestLeeway(t *testing.T) {
	hs := func(c jwt.Claims) string { return sign(t, jwt.SigningMethodHS256, secret, "", c) }
	def := newVerifier(t, auth.Config{HS256Secret: secret})
	tight := newVerifier(t, auth.Config{HS256Secret: secret, Leeway: 5 * time.Second})
	cases := []struct {
		name      string
		v         *auth.Verifier
		token     string
		wantError error
	}{
		{"exp 29s ago, default 30s", def, hs(with("exp", t0.Add(-29*time.Second).Unix())), nil},
		{"exp 30s ago, default 30s", def, hs(with("exp", t0.Add(-30*time.Second).Unix())), auth.ErrExpired},
		{"exp 4s ago, leeway 5s", tight, hs(with("exp", t0.Add(-4*time.Second).Unix())), nil},
		{"exp 10s ago, leeway 5s", tight, hs(with("exp", t0.Add(-10*time.Second).Unix())), auth.ErrExpired},
		{"nbf in 30s, default 30s", def, hs(with("nbf", t0.Add(30*time.Second).Unix())), nil},
		{"nbf in 31s, default 30s", def, hs(with("nbf", t0.Add(31*time.Second).Unix())), auth.ErrInvalid},
		{"nbf in 6s, leeway 5s", tight, hs(with("nbf", t0.Add(6*time.Second).Unix())), auth.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.v.Verify(tc.token)
			if tc.wantError == nil && err != nil || tc.wantError != nil && !errors.Is(err, tc.wantError) {
				t.Errorf("Verify: %v, want %v", err, tc.wantError)
			}
		})
	}
}

// TestJWKSRotation: kid selects the key, a token without kid tries every key
// of its alg, and after Reload a removed key no longer verifies.
func TestJWKSRotation(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	file := writeFile(t, dir, "jwks.json", jwksBytes(t, jwkOf("old", &k.rsa.PublicKey), jwkOf("new", &k.rsa2.PublicKey), jwkOf("ed", k.ed.Public())))
	v := newVerifier(t, auth.Config{KeyFiles: []string{file}})
	if got := v.Algorithms(); !slices.Equal(got, []string{"RS256", "EdDSA"}) {
		t.Errorf("Algorithms() = %v", got)
	}
	byOld := sign(t, jwt.SigningMethodRS256, k.rsa, "old", good())
	byNew := sign(t, jwt.SigningMethodRS256, k.rsa2, "new", good())
	byNewNoKid := sign(t, jwt.SigningMethodRS256, k.rsa2, "", good())
	byEdNoKid := sign(t, jwt.SigningMethodEdDSA, k.ed, "", good())
	oldAsNew := sign(t, jwt.SigningMethodRS256, k.rsa, "new", good())
	edKidOnRSA := sign(t, jwt.SigningMethodRS256, k.rsa, "ed", good())
	unknown := sign(t, jwt.SigningMethodRS256, k.rsa, "gone", good())

	expect := func(stage, name, tok string, wantMsg string) {
		t.Helper()
		_, err := v.Verify(tok)
		switch {
		case wantMsg == "" && err != nil:
			t.Errorf("%s: %s refused: %v", stage, name, err)
		case wantMsg != "" && (!errors.Is(err, auth.ErrInvalid) || !strings.Contains(err.Error(), wantMsg)):
			t.Errorf("%s: %s: got %v, want ErrInvalid saying %q", stage, name, err, wantMsg)
		}
	}
	expect("before", "old key", byOld, "")
	expect("before", "new key", byNew, "")
	expect("before", "no kid", byNewNoKid, "")
	expect("before", "Ed25519 without kid", byEdNoKid, "")
	expect("before", "old key under new kid", oldAsNew, "signature is invalid")
	expect("before", "kid of another algorithm", edKidOnRSA, `no RS256 key with kid "ed"`)
	expect("before", "unknown kid", unknown, `no RS256 key with kid "gone"`)

	writeFile(t, dir, "jwks.json", jwksBytes(t, jwkOf("new", &k.rsa2.PublicKey)))
	if err := v.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expect("after", "old key", byOld, `no RS256 key with kid "old"`)
	expect("after", "new key", byNew, "")
	expect("after", "no kid", byNewNoKid, "")
	expect("after", "Ed25519 removed", byEdNoKid, `algorithm "EdDSA" is not accepted`)
	if got := v.Algorithms(); !slices.Equal(got, []string{"RS256"}) {
		t.Errorf("Algorithms() after reload = %v", got)
	}
}

// TestJWKSWithPEM: a kid unknown to the JWKS falls back to PEM keys (which
// have no kid) of the same algorithm.
func TestJWKSWithPEM(t *testing.T) {
	k := keys()
	v := newVerifier(t, auth.Config{KeyFiles: []string{
		writeFile(t, t.TempDir(), "jwks.json", jwksBytes(t, jwkOf("a", &k.rsa.PublicKey))),
		writePEM(t, &k.rsa2.PublicKey),
	}})
	for name, tok := range map[string]string{
		"kid a":              sign(t, jwt.SigningMethodRS256, k.rsa, "a", good()),
		"PEM key, other kid": sign(t, jwt.SigningMethodRS256, k.rsa2, "elsewhere", good()),
		"PEM key, no kid":    sign(t, jwt.SigningMethodRS256, k.rsa2, "", good()),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestReloadKeepsKeysWhenFilesAreBad(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	file := writeFile(t, dir, "key.pem", pemBytes(t, &k.ec.PublicKey))
	v := newVerifier(t, auth.Config{KeyFiles: []string{file}})
	tok := sign(t, jwt.SigningMethodES256, k.ec, "", good())

	writeFile(t, dir, "key.pem", []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"))
	err := v.Reload()
	var kfe *auth.KeyFileError
	if !errors.As(err, &kfe) || kfe.File != file {
		t.Fatalf("Reload of a bad file: %v, want a KeyFileError naming %s", err, file)
	}
	if _, err := v.Verify(tok); err != nil {
		t.Errorf("old key dropped after a failed Reload: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	file := func(name, content string) string { return writeFile(t, dir, name, []byte(content)) }
	weakRSA := must(rsaKey(1024))
	p384 := must(ecKey384())
	privDER := must(x509.MarshalPKCS8PrivateKey(k.ec))
	jwk := func(kv ...string) map[string]string {
		m := jwkOf("a", &k.ec.PublicKey)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	jwksFile := func(name string, ks ...map[string]string) string {
		return writeFile(t, dir, name, jwksBytes(t, ks...))
	}
	cases := []struct {
		name string
		cfg  auth.Config
		want string // substring; the file name is checked too when a file is involved
		file string
	}{
		{"no keys", auth.Config{}, "no token verification keys configured", ""},
		{"short secret", auth.Config{HS256Secret: []byte("dev")}, "HS256 secret too short: 3 bytes, want at least 32", ""},
		{"negative leeway", auth.Config{HS256Secret: secret, Leeway: -time.Second}, "leeway -1s is negative", ""},
		{"missing file", auth.Config{KeyFiles: []string{dir + "/nope.pem"}}, "no such file or directory", dir + "/nope.pem"},
		{"garbage", auth.Config{KeyFiles: []string{file("g.pem", "hello")}}, "neither PEM nor a JWKS JSON object", "g.pem"},
		{"empty", auth.Config{KeyFiles: []string{file("e.pem", "")}}, "neither PEM nor a JWKS JSON object", "e.pem"},
		{"private key", auth.Config{KeyFiles: []string{file("p.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})))}}, "is a private key", "p.pem"},
		{"weak RSA", auth.Config{KeyFiles: []string{writeFile(t, dir, "w.pem", pemBytes(t, &weakRSA.PublicKey))}}, "RSA key of 1024 bits, want at least 2048", "w.pem"},
		{"P-384", auth.Config{KeyFiles: []string{writeFile(t, dir, "384.pem", pemBytes(t, &p384.PublicKey))}}, "ECDSA curve P-384 is not supported", "384.pem"},
		{"bad PEM body", auth.Config{KeyFiles: []string{file("b.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")}}, "PEM block 1 (PUBLIC KEY)", "b.pem"},
		{"trailing data", auth.Config{KeyFiles: []string{file("t.pem", string(pemBytes(t, &k.ec.PublicKey))+"junk")}}, "trailing data", "t.pem"},
		{"JWKS not JSON", auth.Config{KeyFiles: []string{file("j.json", "{nope")}}, "JWKS: invalid character", "j.json"},
		{"JWKS no keys", auth.Config{KeyFiles: []string{file("k.json", `{"x":1}`)}}, `JWKS: no "keys" array`, "k.json"},
		{"JWKS only enc keys", auth.Config{KeyFiles: []string{jwksFile("enc.json", jwk("use", "enc"))}}, "holds no signing key", "enc.json"},
		{"JWKS no kid", auth.Config{KeyFiles: []string{jwksFile("nokid.json", jwk("kid", ""))}}, "JWKS key 0 (kid \"\"): no kid", "nokid.json"},
		{"JWKS private", auth.Config{KeyFiles: []string{jwksFile("d.json", jwk("d", "AAAA"))}}, "holds private or secret key material", "d.json"},
		{"JWKS oct", auth.Config{KeyFiles: []string{jwksFile("oct.json", map[string]string{"kty": "oct", "kid": "s"})}}, "kty oct", "oct.json"},
		{"JWKS alg mismatch", auth.Config{KeyFiles: []string{jwksFile("alg.json", jwk("alg", "RS256"))}}, `alg "RS256" is not supported for this key (want ES256)`, "alg.json"},
		{"JWKS P-384", auth.Config{KeyFiles: []string{jwksFile("crv.json", jwk("crv", "P-384"))}}, `crv "P-384" is not supported`, "crv.json"},
		{"JWKS point off curve", auth.Config{KeyFiles: []string{jwksFile("pt.json", jwk("y", strings.Repeat("A", 43)))}}, "bad P-256 point", "pt.json"},
		{"JWKS weak RSA", auth.Config{KeyFiles: []string{jwksFile("wr.json", jwkOf("w", &weakRSA.PublicKey))}}, "RSA key of 1024 bits", "wr.json"},
		{"JWKS duplicate kid", auth.Config{KeyFiles: []string{jwksFile("a.json", jwk()), jwksFile("b.json", jwkOf("a", k.ed.Public()))}}, `kid "a" is also used in`, "b.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := auth.New(tc.cfg)
			if err == nil {
				t.Fatalf("New accepted it: %v", v.Algorithms())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if tc.file != "" {
				var kfe *auth.KeyFileError
				if !errors.As(err, &kfe) || !strings.HasSuffix(kfe.File, tc.file) || !strings.Contains(err.Error(), tc.file) {
					t.Errorf("error %q is not a KeyFileError naming %s", err, tc.file)
				}
			}
		})
	}
	if _, err := auth.New(auth.Config{}); !errors.Is(err, auth.ErrNoKeys) {
		t.Errorf("no keys: %v, want ErrNoKeys", err)
	}
	if _, err := auth.New(auth.Config{HS256Secret: []byte("x")}); !errors.Is(err, auth.ErrWeakSecret) {
		t.Errorf("short secret: %v, want ErrWeakSecret", err)
	}
}

func TestKeyFileFormats(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	// Several blocks in one file, PKCS#1 RSA and a self-signed certificate.
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	multi := append(append(pkcs1, pemBytes(t, k.ed.Public())...), certPEM(t, k.ec)...)
	v := newVerifier(t, auth.Config{KeyFiles: []string{writeFile(t, dir, "multi.pem", multi)}})
	if got := v.Algorithms(); !slices.Equal(got, []string{"RS256", "EdDSA", "ES256"}) {
		t.Errorf("Algorithms() = %v", got)
	}
	for name, tok := range map[string]string{
		"RS256 via PKCS#1": sign(t, jwt.SigningMethodRS256, k.rsa, "", good()),
		"EdDSA":            sign(t, jwt.SigningMethodEdDSA, k.ed, "", good()),
		"ES256 via cert":   sign(t, jwt.SigningMethodES256, k.ec, "", good()),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMayTopic(t *testing.T) {
	c := auth.Claims{Topics: []string{"news", "deals.*", "room-[ab]", "bad["}}
	for topic, want := range map[string]bool{
		"news": true, "deals.fr": true, "deals.": true, "room-a": true, "room-c": false,
		"sports": false, "newsx": false, "": false, "deals.a/b": false, "bad[": false,
	} {
		if got := c.MayTopic(topic); got != want {
			t.Errorf("MayTopic(%q) = %v, want %v", topic, got, want)
		}
	}
	if (auth.Claims{}).MayTopic("news") {
		t.Error("no topics claim allows a topic")
	}
}

func TestMint(t *testing.T) {
	v := newVerifier(t, auth.Config{HS256Secret: secret})
	in := auth.Claims{Subject: "u@x", Tenant: "t1", Device: "d1", Topics: []string{"a.*"}, IssuedAt: t0.Add(-time.Minute), Issuer: "dev"}
	tok, err := auth.Mint(secret, in, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok)
	if err != nil {
		t.Fatalf("Verify(Mint): %v", err)
	}
	if !c.Expires.Equal(t0.Add(59*time.Minute)) || c.Subject != "u@x" || c.Tenant != "t1" || c.Device != "d1" || !c.MayTopic("a.b") || c.Issuer != "dev" {
		t.Errorf("claims = %+v", c)
	}

	in.Expires = t0.Add(-time.Hour)
	tok, err = auth.Mint(secret, in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tok); !errors.Is(err, auth.ErrExpired) {
		t.Errorf("Mint with past Expires: %v, want ErrExpired", err)
	}

	for _, tc := range []struct {
		name string
		key  []byte
		c    auth.Claims
		ttl  time.Duration
		want string
	}{
		{"short key", []byte("k"), in, time.Hour, "HS256 secret too short"},
		{"no expiry", secret, auth.Claims{Subject: "1", Tenant: "t"}, 0, "no expiry"},
		{"negative ttl", secret, in, -time.Second, "negative"},
		{"bad tenant", secret, auth.Claims{Subject: "1", Tenant: "a b"}, time.Hour, `claim tenant "a b"`},
		{"bad topic", secret, auth.Claims{Subject: "1", Tenant: "t", Topics: []string{"["}}, time.Hour, "claim topics entry"},
	} {
		if _, err := auth.Mint(tc.key, tc.c, tc.ttl); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Mint error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestVerifyDuringReload runs Verify and Reload together under -race.
func TestVerifyDuringReload(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	file := writeFile(t, dir, "jwks.json", jwksBytes(t, jwkOf("a", k.ed.Public())))
	v := newVerifier(t, auth.Config{KeyFiles: []string{file}})
	tok := sign(t, jwt.SigningMethodEdDSA, k.ed, "a", good())
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := v.Verify(tok); err != nil {
				errs <- err
				return
			}
		}
	}()
	for range 50 {
		if err := v.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Errorf("Verify during Reload: %v", err)
	}
}
