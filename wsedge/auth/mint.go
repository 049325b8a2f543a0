package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Mint signs c with HS256 for development and tests (`herald token`). The
// token's iat is c.IssuedAt (zero means now) and its exp is iat+ttl, or
// c.Expires when ttl is 0. c must hold a valid Subject and Tenant, and a
// valid Device and Topics when set; key must be at least MinSecretLen bytes.
func Mint(key []byte, c Claims, ttl time.Duration) (string, error) {
	if len(key) < MinSecretLen {
		return "", fmt.Errorf("%w: %d bytes, want at least %d", ErrWeakSecret, len(key), MinSecretLen)
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	exp := c.Expires
	switch {
	case ttl > 0:
		exp = iat.Add(ttl)
	case ttl < 0:
		return "", fmt.Errorf("mint: ttl %v is negative", ttl)
	case exp.IsZero():
		return "", errors.New("mint: no expiry: give a ttl or Claims.Expires")
	}
	wc := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			IssuedAt:  jwt.NewNumericDate(iat),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Tenant: c.Tenant,
		Device: c.Device,
		Topics: c.Topics,
	}
	if !c.NotBefore.IsZero() {
		wc.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	if err := checkShape(&wc); err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, wc).SignedString(key)
}
