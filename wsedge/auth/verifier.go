package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks connection tokens. It is safe for concurrent use; Reload
// may run while Verify does.
type Verifier struct {
	cfg    Config
	keys   atomic.Pointer[keySet]
	reload sync.Mutex // serialises Reload
}

// New loads the keys of cfg. A key file that cannot be used is refused with a
// [*KeyFileError] naming it; no key at all is [ErrNoKeys].
func New(cfg Config) (*Verifier, error) {
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("leeway %v is negative", cfg.Leeway)
	}
	if cfg.HS256Secret != nil && len(cfg.HS256Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d (e.g. openssl rand -hex 32)", ErrWeakSecret, len(cfg.HS256Secret), MinSecretLen)
	}
	cfg.setDefaults()
	cfg.HS256Secret = slices.Clone(cfg.HS256Secret)
	cfg.KeyFiles = slices.Clone(cfg.KeyFiles)
	v := &Verifier{cfg: cfg}
	if err := v.Reload(); err != nil {
		return nil, err
	}
	return v, nil
}

// Reload re-reads the key files (key rotation). It is atomic: if any file is
// bad, the error is returned and the keys in use stay as they were.
func (v *Verifier) Reload() error {
	v.reload.Lock()
	defer v.reload.Unlock()
	var keys []verifyKey
	if v.cfg.HS256Secret != nil {
		keys = append(keys, verifyKey{alg: algHS256, key: v.cfg.HS256Secret})
	}
	fileKeys, err := loadKeys(v.cfg.KeyFiles)
	if err != nil {
		return err
	}
	ks, err := newKeySet(append(keys, fileKeys...))
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	return nil
}

// Algorithms lists the accepted algorithms (those with a configured key),
// for start-up logs.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.keys.Load().algs) }

// Verify checks a token's signature and claims and returns its claims. Every
// error matches [ErrInvalid] or [ErrExpired] (errors.Is) and, when the jwt
// library found the problem, the jwt error too; its message says what is
// wrong, e.g. "token invalid: claim tenant is missing".
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, invalid(nil, "empty token")
	}
	if len(token) > MaxTokenLen {
		return Claims{}, invalid(nil, "longer than %d bytes", MaxTokenLen)
	}
	ks := v.keys.Load()
	var wc wireClaims
	if _, err := ks.parser.ParseWithClaims(token, &wc, ks.keyfunc); err != nil {
		return Claims{}, parseError(err)
	}
	return v.checkClaims(&wc)
}

// parseError turns a jwt parse error (format, alg, key or signature) into an
// ErrInvalid with a readable message that still matches the jwt error.
func parseError(err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return invalid(err, "%s", ke.msg)
	}
	msg := err.Error()
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		if alg, ok := strings.CutPrefix(msg, jwt.ErrTokenSignatureInvalid.Error()+": signing method "); ok {
			return invalid(err, "algorithm %q is not accepted", strings.TrimSuffix(alg, " is invalid"))
		}
	}
	// jwt messages start with "token is malformed", "token signature is
	// invalid"...: drop the leading "token " after our own "token invalid: ".
	msg = strings.TrimPrefix(msg, "token ")
	msg = strings.TrimPrefix(msg, "is ")
	return invalid(err, "%s", dedupe(msg))
}

// dedupe drops a ": "-separated part equal to the one before it
// ("signature is invalid: signature is invalid").
func dedupe(msg string) string {
	parts := strings.Split(msg, ": ")
	return strings.Join(slices.Compact(parts), ": ")
}
