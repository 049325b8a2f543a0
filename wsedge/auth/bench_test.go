package auth_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// The connect-path budget is 0.25 ms of CPU per connection in total.

func BenchmarkVerifyHS256(b *testing.B) {
	benchVerify(b, auth.Config{HS256Secret: secret}, jwt.SigningMethodHS256, secret)
}

func BenchmarkVerifyRS256(b *testing.B) {
	k := keys()
	benchVerify(b, auth.Config{KeyFiles: []string{writePEM(b, &k.rsa.PublicKey)}}, jwt.SigningMethodRS256, k.rsa)
}

func BenchmarkVerifyES256(b *testing.B) {
	k := keys()
	benchVerify(b, auth.Config{KeyFiles: []string{writePEM(b, &k.ec.PublicKey)}}, jwt.SigningMethodES256, k.ec)
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	k := keys()
	benchVerify(b, auth.Config{KeyFiles: []string{writePEM(b, k.ed.Public())}}, jwt.SigningMethodEdDSA, k.ed)
}

func benchVerify(b *testing.B, cfg auth.Config, m jwt.SigningMethod, key any) {
	v := newVerifier(b, cfg)
	tok := sign(b, m, key, "", good())
	if _, err := v.Verify(tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
