package auth

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error [Verifier.Verify] returns matches exactly one
// of ErrInvalid and ErrExpired with [errors.Is]; the edge closes with 4001 for
// ErrInvalid and 4004 for ErrExpired.
var (
	// ErrInvalid: the token is missing, malformed, signed by an unknown key or
	// with an algorithm that is not configured, or carries bad claims.
	ErrInvalid = errors.New("token invalid")
	// ErrExpired: the token was valid but its exp (plus leeway) has passed;
	// the client should get a fresh token and reconnect.
	ErrExpired = errors.New("token expired")
	// ErrNoKeys: the configuration holds no HS256 secret, no key file and no
	// JWKS URL.
	ErrNoKeys = errors.New("no token verification keys configured (set an HS256 secret, key files or a JWKS URL)")
	// ErrWeakSecret: the HS256 secret is shorter than MinSecretLen bytes.
	ErrWeakSecret = errors.New("HS256 secret too short")
)

// KeyFileError reports a key file that cannot be used: unreadable, neither
// PEM nor JWKS, or holding a key of an unsupported kind.
type KeyFileError struct {
	File    string
	Problem error
}

func (e *KeyFileError) Error() string { return fmt.Sprintf("key file %s: %v", e.File, e.Problem) }

func (e *KeyFileError) Unwrap() error { return e.Problem }

// JWKSError reports a fetch of the JWKS URL that failed: the request, its
// status, its size, its content, or a kid that a key file holds with
// another key. [New] returns it for the first fetch, [Verifier.Reload] for
// its own; a failed background refresh is logged.
type JWKSError struct {
	URL     string
	Problem error
}

func (e *JWKSError) Error() string { return fmt.Sprintf("JWKS URL %s: %v", e.URL, e.Problem) }

func (e *JWKSError) Unwrap() error { return e.Problem }

// tokenError is what Verify returns: a message readable on its own that
// matches its kind (ErrInvalid or ErrExpired) and, when there is one, the
// jwt error behind it.
type tokenError struct {
	kind  error
	msg   string
	cause error
}

func (e *tokenError) Error() string { return e.msg }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// invalid returns an ErrInvalid whose message is "token invalid: " and the
// formatted detail; cause (may be nil) is matched by errors.Is too.
func invalid(cause error, format string, args ...any) error {
	return &tokenError{kind: ErrInvalid, msg: ErrInvalid.Error() + ": " + fmt.Sprintf(format, args...), cause: cause}
}
