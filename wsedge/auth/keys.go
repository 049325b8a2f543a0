package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Algorithm names, as they appear in a token's alg header.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// verifyKey is one configured key: the algorithm it verifies, its kid (empty
// for PEM keys and the HS256 secret) and the key itself ([]byte,
// *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey).
type verifyKey struct {
	alg string
	kid string
	key any
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
		for _, k := range keys {
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
