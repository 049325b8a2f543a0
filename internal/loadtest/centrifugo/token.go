package centrifugo

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignToken returns a Centrifugo connection token for user: an HS256 JWT
// with the claims sub (the user) and exp, signed with secret (the server's
// client.token.hmac_secret_key). It carries no channels claim: the
// personal channel is subscribed by the server's configuration
// (client.subscribe_to_user_personal_channel), not by the token.
//
// Let exp fall after the run: Centrifugo tells a client with an expiring
// token to refresh it (the connect reply's expires and ttl), and this
// package does not implement refresh.
func SignToken(secret, user string, exp time.Time) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("sign centrifugo token for %s: %w", user, err)
	}
	return s, nil
}
