package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults and limits.
const (
	// DefaultLeeway is the clock skew tolerated on exp and nbf.
	DefaultLeeway = 30 * time.Second
	// MinSecretLen is the shortest HS256 secret accepted (RFC 7518 3.2: a key
	// at least as long as the hash output).
	MinSecretLen = 32
	// MaxTokenLen bounds the token text Verify will look at.
	MaxTokenLen = 8 << 10
	// MaxTopics bounds the entries of the topics claim.
	MaxTopics = 256
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048

	// DefaultJWKSMinRefresh is the default shortest cache lifetime of a
	// fetched JWKS.
	DefaultJWKSMinRefresh = time.Minute
	// DefaultJWKSMaxRefresh is the default longest cache lifetime of a
	// fetched JWKS.
	DefaultJWKSMaxRefresh = 24 * time.Hour
	// DefaultJWKSRefresh is the cache lifetime of a JWKS response without a
	// Cache-Control max-age (then clamped like any other).
	DefaultJWKSRefresh = 15 * time.Minute
	// DefaultJWKSRefetchInterval is the default least time between two
	// fetches caused by tokens with an unknown kid.
	DefaultJWKSRefetchInterval = 10 * time.Second
	// JWKSFetchTimeout bounds every fetch of the JWKS URL, whatever the client.
	JWKSFetchTimeout = 10 * time.Second
	// MaxJWKSBytes bounds the body of a JWKS response; a larger one is refused.
	MaxJWKSBytes = 1 << 20
)

// Config configures a [Verifier]. At least one of HS256Secret, KeyFiles and
// JWKSURL must be set; the keys of all that are set are accepted together.
type Config struct {
	// HS256Secret enables HS256 (development). Nil means HS256 is refused.
	// At least MinSecretLen bytes.
	HS256Secret []byte
	// KeyFiles are public keys: PEM files (RSA → RS256, ECDSA P-256 → ES256,
	// Ed25519 → EdDSA; "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"
	// blocks, several per file allowed) or JWKS JSON files whose keys each
	// have a "kid". The kind is detected by content. [Verifier.Reload]
	// re-reads them.
	KeyFiles []string
	// JWKSURL, when set, is an https (or http) URL serving a JWKS. Its
	// signing keys with a "kid" are used as those of a JWKS key file; keys
	// that cannot be used (no kid, an unsupported or weak key) are left out
	// and logged, and private key material refuses the whole document. [New]
	// fetches it and fails if it cannot or no key is left; the Verifier then
	// refreshes it in the background when its cache lifetime ends, and at
	// once (rate-limited) when a token names a kid it does not know. A
	// failed refresh keeps the keys it has. Empty means no URL.
	JWKSURL string
	// JWKSClient fetches JWKSURL. Nil means a client of the Verifier's own,
	// whose idle connections Close closes. Each fetch is bounded by
	// JWKSFetchTimeout and its body by MaxJWKSBytes whatever the client.
	JWKSClient *http.Client
	// JWKSMinRefresh and JWKSMaxRefresh bound the cache lifetime of the
	// JWKS: the response's Cache-Control max-age, or DefaultJWKSRefresh
	// when it has none, is clamped to [JWKSMinRefresh, JWKSMaxRefresh].
	// JWKSMinRefresh also caps the backoff between failed refreshes.
	// 0 means 1 min and 24 h; negative, or a min above the max, is refused.
	JWKSMinRefresh time.Duration
	JWKSMaxRefresh time.Duration
	// JWKSRefetchInterval is the least time between two fetches caused by
	// tokens with an unknown kid; Verify calls that find an unknown kid
	// while a fetch is running wait for that fetch instead of starting one.
	// 0 means 10s; negative is refused.
	JWKSRefetchInterval time.Duration
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string
	// Leeway is the clock skew tolerated on exp and nbf. 0 means 30s;
	// negative is refused.
	Leeway time.Duration
	// Now returns the current time for exp and nbf. Nil means time.Now
	// (tests set it). The JWKS schedule always uses the real clock.
	Now func() time.Time
	// Logger receives the JWKS refreshes that change keys or fail. Nil
	// discards.
	Logger *slog.Logger
}

// check refuses settings that have no meaning.
func (c *Config) check() error {
	switch {
	case c.Leeway < 0:
		return fmt.Errorf("leeway %v is negative", c.Leeway)
	case c.JWKSMinRefresh < 0 || c.JWKSMaxRefresh < 0 || c.JWKSRefetchInterval < 0:
		return fmt.Errorf("JWKS refresh durations must not be negative (min %v, max %v, refetch %v)",
			c.JWKSMinRefresh, c.JWKSMaxRefresh, c.JWKSRefetchInterval)
	case c.HS256Secret != nil && len(c.HS256Secret) < MinSecretLen:
		return fmt.Errorf("%w: %d bytes, want at least %d (e.g. openssl rand -hex 32)", ErrWeakSecret, len(c.HS256Secret), MinSecretLen)
	}
	if c.JWKSURL == "" {
		return nil
	}
	u, err := url.Parse(c.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("JWKS URL %q: want an absolute https or http URL", c.JWKSURL)
	}
	minR, maxR := or(c.JWKSMinRefresh, DefaultJWKSMinRefresh), or(c.JWKSMaxRefresh, DefaultJWKSMaxRefresh)
	if minR > maxR {
		return fmt.Errorf("JWKS min refresh %v is above max refresh %v", minR, maxR)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.JWKSMinRefresh = or(c.JWKSMinRefresh, DefaultJWKSMinRefresh)
	c.JWKSMaxRefresh = or(c.JWKSMaxRefresh, DefaultJWKSMaxRefresh)
	c.JWKSRefetchInterval = or(c.JWKSRefetchInterval, DefaultJWKSRefetchInterval)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
