package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// jwk is one key of a JWKS (RFC 7517), public members only plus the private
// ones whose presence is refused.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
	K   string `json:"k"`
}

// parseJWKS reads {"keys":[...]} from a key file. Keys with "use" other
// than "sig" are skipped; every other key must be usable, have a kid, and,
// when it names an alg, name the one its type verifies.
func parseJWKS(data []byte) ([]verifyKey, error) { return parseJWKSSkipping(data, nil) }

// parseJWKSSkipping reads a JWKS as parseJWKS does, except that, when skip
// is set, a key that cannot be used (no kid, an unsupported type, curve or
// alg, a weak or malformed key) is passed to skip and left out rather than
// refusing the document: the JWKS URL's provider may publish keys for
// other services. Private or secret key material is refused either way.
func parseJWKSSkipping(data []byte, skip func(i int, kid string, err error)) ([]verifyKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`JWKS: no "keys" array`)
	}
	var keys []verifyKey
	for i, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.verifyKey()
		switch {
		case err == nil:
			keys = append(keys, k)
		case skip != nil && j.D == "" && j.K == "":
			skip(i, j.Kid, err)
		default:
			return nil, fmt.Errorf("JWKS key %d (kid %q): %w", i, j.Kid, err)
		}
	}
	return keys, nil
}

func (j jwk) verifyKey() (verifyKey, error) {
	if j.Kid == "" {
		return verifyKey{}, errors.New("no kid")
	}
	if j.D != "" || j.K != "" {
		return verifyKey{}, errors.New("holds private or secret key material; publish public keys only (HS256 uses the configured secret)")
	}
	pub, err := j.publicKey()
	if err != nil {
		return verifyKey{}, err
	}
	alg, err := algFor(pub)
	if err != nil {
		return verifyKey{}, err
	}
	if j.Alg != "" && j.Alg != alg {
		return verifyKey{}, fmt.Errorf("alg %q is not supported for this key (want %s)", j.Alg, alg)
	}
	return verifyKey{alg: alg, kid: j.Kid, key: pub}, nil
}

func (j jwk) publicKey() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64Field("n", j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64Field("e", j.E)
		if err != nil {
			return nil, err
		}
		if len(e) > 4 {
			return nil, errors.New("field e is too large")
		}
		ev := int(new(big.Int).SetBytes(e).Int64())
		if ev < 3 || ev%2 == 0 {
			return nil, fmt.Errorf("field e is %d, want an odd exponent of at least 3", ev)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ev}, nil
	case "EC":
		if j.Crv != "P-256" {
			return nil, fmt.Errorf("crv %q is not supported (ES256 needs P-256)", j.Crv)
		}
		x, err := b64Field("x", j.X)
		if err != nil {
			return nil, err
		}
		y, err := b64Field("y", j.Y)
		if err != nil {
			return nil, err
		}
		if len(x) != 32 || len(y) != 32 {
			return nil, errors.New("fields x and y must be 32 bytes each for P-256")
		}
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return nil, fmt.Errorf("bad P-256 point: %w", err)
		}
		return pub, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("crv %q is not supported (EdDSA needs Ed25519)", j.Crv)
		}
		x, err := b64Field("x", j.X)
		if err != nil {
			return nil, err
		}
		if len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("field x is %d bytes, want %d", len(x), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(x), nil
	case "oct":
		return nil, errors.New("symmetric keys (kty oct) are not accepted; HS256 uses the configured secret")
	}
	return nil, fmt.Errorf("kty %q is not supported (want RSA, EC or OKP)", j.Kty)
}

func b64Field(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("field %s is missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", name, err)
	}
	return b, nil
}
