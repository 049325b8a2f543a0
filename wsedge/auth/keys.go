package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// Algorithm names, as they appear in a token's alg header.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// verifyKey is one configured key: the algorithm it verifies, its kid (empty
// for PEM keys and the HS256 secret), the key itself ([]byte,
// *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey) and where it came
// from (a file name or the JWKS URL; empty for the secret).
type verifyKey struct {
	alg string
	kid string
	key any
	src string
}

// loadKeys reads every key file; the first bad file stops it with a
// *KeyFileError.
func loadKeys(files []string) ([]verifyKey, error) {
	var all []verifyKey
	kids := make(map[string]string) // kid -> file
	for _, name := range files {
		keys, err := loadFile(name)
		if err != nil {
			return nil, &KeyFileError{File: name, Problem: err}
		}
		for i, k := range keys {
			keys[i].src = name
			if k.kid == "" {
				continue
			}
			if prev, dup := kids[k.kid]; dup {
				return nil, &KeyFileError{File: name, Problem: fmt.Errorf("kid %q is also used in %s", k.kid, prev)}
			}
			kids[k.kid] = name
		}
		all = append(all, keys...)
	}
	return all, nil
}

// loadFile reads one key file: JSON (a JWKS) if it starts with '{', else PEM.
func loadFile(name string) ([]verifyKey, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(data)
	var keys []verifyKey
	if bytes.HasPrefix(data, []byte("{")) {
		keys, err = parseJWKS(data)
	} else {
		keys, err = parsePEM(data)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("holds no signing key")
	}
	return keys, nil
}

// parsePEM reads every PEM block of a file. Private keys are refused: the
// edge only ever needs public keys.
func parsePEM(data []byte) ([]verifyKey, error) {
	var keys []verifyKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		pub, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		alg, err := algFor(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, verifyKey{alg: alg, key: pub})
	}
	if len(keys) == 0 {
		return nil, errors.New("neither PEM nor a JWKS JSON object")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("trailing data after the last PEM block")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (any, error) {
	switch b.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, errors.New("is a private key; give the edge the public key only")
	}
	return nil, errors.New("unsupported PEM block type (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)")
}

// algFor maps a public key to the one algorithm it verifies, refusing weak
// or unsupported keys.
func algFor(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits, want at least %d", bits, minRSABits)
		}
		return algRS256, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA curve %s is not supported (ES256 needs P-256)", k.Curve.Params().Name)
		}
		return algES256, nil
	case ed25519.PublicKey:
		return algEdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T (want RSA, ECDSA P-256 or Ed25519)", pub)
}

// combine joins the keys of the secret and the files with those of the JWKS
// URL. A kid the URL serves twice, or that a file holds too, must name the
// same key (it is kept once); a kid that names two keys is refused.
func combine(static, remote []verifyKey) ([]verifyKey, error) {
	seen := make(map[string]verifyKey)
	for _, k := range static {
		if k.kid != "" {
			seen[k.kid] = k
		}
	}
	out := slices.Clip(static)
	for _, k := range remote {
		prev, dup := seen[k.kid]
		switch {
		case !dup:
			seen[k.kid] = k
			out = append(out, k)
		case prev.alg == k.alg && sameKey(prev.key, k.key):
			// The same key twice (a file pinning a key the URL serves).
		case prev.src == k.src:
			return nil, fmt.Errorf("kid %q names two different keys", k.kid)
		default:
			return nil, &KeyFileError{File: prev.src, Problem: fmt.Errorf("kid %q is also served by %s with another key", k.kid, k.src)}
		}
	}
	return out, nil
}

func sameKey(a, b any) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// keyFits reports whether key is the right type for alg. The keyfunc checks
// it on every token, so a key can never be used with another algorithm's
// verifier (the HS256/RS256 confusion).
func keyFits(alg string, key any) bool {
	switch k := key.(type) {
	case []byte:
		return alg == algHS256 && len(k) >= MinSecretLen
	case *rsa.PublicKey:
		return alg == algRS256
	case *ecdsa.PublicKey:
		return alg == algES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == algEdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}
