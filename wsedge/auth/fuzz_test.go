package auth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/wsedge/auth"
)

// FuzzVerify feeds arbitrary tokens to Verify, as given and re-signed with
// the HS256 secret (so mutated headers and payloads reach claim checking).
// Verify must never panic, every error must match exactly one sentinel, and
// whatever it accepts must carry a valid sub, tenant, device and topics.
func FuzzVerify(f *testing.F) {
	hs := func(c jwt.MapClaims) string { return sign(f, jwt.SigningMethodHS256, secret, "", c) }
	for _, s := range []string{
		hs(good()),
		hs(with("exp", t0.Add(-time.Hour).Unix())),
		hs(with("nbf", t0.Add(time.Hour).Unix(), "aud", []string{"a", "b"}, "iss", "x")),
		hs(with("topics", []string{"a.*", "b[0-9]", `c\*`, "[^x]"}, "device", nil)),
		hs(with("tenant", nil, "exp", 1.5)),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", good()),
		sign(f, jwt.SigningMethodHS256, secret, "k1", good()),
		"eyJhbGciOiJIUzI1NiJ9.e30.", "a.b.c", "...", "",
	} {
		f.Add(s)
	}
	v := newVerifier(f, auth.Config{HS256Secret: secret})
	f.Fuzz(func(t *testing.T, token string) {
		checkVerify(t, v, token)
		if h, rest, ok := strings.Cut(token, "."); ok {
			p, _, _ := strings.Cut(rest, ".")
			checkVerify(t, v, h+"."+p+"."+hs256(h+"."+p))
		}
	})
}

func hs256(signing string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func checkVerify(t *testing.T, v *auth.Verifier, token string) {
	c, err := v.Verify(token)
	if err != nil {
		inv, exp := errors.Is(err, auth.ErrInvalid), errors.Is(err, auth.ErrExpired)
		if inv == exp {
			t.Fatalf("error %q: ErrInvalid %v, ErrExpired %v; want exactly one", err, inv, exp)
		}
		if !strings.HasPrefix(err.Error(), "token ") {
			t.Fatalf("error %q does not start with \"token \"", err)
		}
		return
	}
	if !events.ValidID(c.Subject) || !events.ValidTenant(c.Tenant) {
		t.Fatalf("accepted bad sub %q or tenant %q", c.Subject, c.Tenant)
	}
	if c.Device != "" && !events.ValidID(c.Device) {
		t.Fatalf("accepted bad device %q", c.Device)
	}
	if !t0.Before(c.Expires.Add(auth.DefaultLeeway)) {
		t.Fatalf("accepted a token expired at %v", c.Expires)
	}
	for _, g := range c.Topics {
		if _, err := path.Match(g, ""); err != nil || g == "" {
			t.Fatalf("accepted bad topic pattern %q", g)
		}
	}
}
