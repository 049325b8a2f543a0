package wsedge

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/heraldrt/herald/wsedge/auth"
)

// maxCloseReason is the longest close reason a close frame can carry
// (RFC 6455 section 5.5: 125 bytes of payload, 2 of them the code).
const maxCloseReason = 123

// clipReason makes s fit a close reason or an error frame's message: valid
// UTF-8 (invalid bytes become U+FFFD) of at most 120 bytes, cut on a
// character boundary. A close frame whose reason splits a character is
// invalid, and browsers then report 1006 instead of the code.
func clipReason(s string) string { return clipUTF8(s, 120) }

// clipUTF8 returns s as valid UTF-8 of at most max bytes, cut before the
// first character that would not fit whole.
func clipUTF8(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// tokenReason is what a client is told about a token the Verifier refused:
// the kind of fault, never the server's configuration (expected issuer,
// audience, key ids, accepted algorithms). The full error goes to the
// audit log.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "invalid token: issuer or audience not accepted"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "invalid token: not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "invalid token: a required claim is missing"
	case errors.Is(err, jwt.ErrTokenInvalidSubject), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "invalid token: bad claims"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "invalid token: malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid token: signature not verified"
	}
	return "invalid token"
}
