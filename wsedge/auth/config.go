package auth

import "time"

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
)

// Config configures a [Verifier]. At least one of HS256Secret and KeyFiles
// must be set.
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
	// Issuer, when set, must equal the token's iss.
	Issuer string
	// Audience, when set, must be one of the token's aud.
	Audience string
	// Leeway is the clock skew tolerated on exp and nbf. 0 means 30s;
	// negative is refused.
	Leeway time.Duration
	// Now returns the current time. Nil means time.Now (tests set it).
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}
