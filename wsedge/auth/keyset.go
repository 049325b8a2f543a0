package auth

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// methods are the only signing methods a token may name, by alg.
var methods = map[string]jwt.SigningMethod{
	algHS256: jwt.SigningMethodHS256,
	algRS256: jwt.SigningMethodRS256,
	algES256: jwt.SigningMethodES256,
	algEdDSA: jwt.SigningMethodEdDSA,
}

// keySet is an immutable snapshot of the configured keys with the parser
// whose algorithm allowlist is exactly their algorithms. Reload swaps whole
// snapshots.
type keySet struct {
	algs    []string
	byAlg   map[string]*algKeys
	parser  *jwt.Parser
	keyfunc jwt.Keyfunc
}

// algKeys are the keys of one algorithm.
type algKeys struct {
	byKid   map[string]any
	unkeyed any // keys without kid: nil, one key or a jwt.VerificationKeySet
	all     any // every key: one key or a jwt.VerificationKeySet
}

// keyError is a keyfunc refusal; its text becomes the Verify message.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

func newKeySet(keys []verifyKey) (*keySet, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	ks := &keySet{byAlg: make(map[string]*algKeys)}
	grouped := make(map[string][]verifyKey)
	for _, k := range keys {
		if !keyFits(k.alg, k.key) {
			return nil, fmt.Errorf("key %T does not fit algorithm %s", k.key, k.alg)
		}
		if _, ok := grouped[k.alg]; !ok {
			ks.algs = append(ks.algs, k.alg)
		}
		grouped[k.alg] = append(grouped[k.alg], k)
	}
	for alg, ks2 := range grouped {
		ak := &algKeys{byKid: make(map[string]any)}
		var all, unkeyed []jwt.VerificationKey
		for _, k := range ks2 {
			all = append(all, k.key)
			if k.kid == "" {
				unkeyed = append(unkeyed, k.key)
			} else {
				ak.byKid[k.kid] = k.key
			}
		}
		ak.all, ak.unkeyed = keyOrSet(all), keyOrSet(unkeyed)
		ks.byAlg[alg] = ak
	}
	ks.parser = jwt.NewParser(
		jwt.WithValidMethods(ks.algs),
		jwt.WithStrictDecoding(),
		jwt.WithoutClaimsValidation(), // claims are checked by checkClaims, in a fixed order
	)
	ks.keyfunc = ks.keyFor
	return ks, nil
}

func keyOrSet(keys []jwt.VerificationKey) any {
	switch len(keys) {
	case 0:
		return nil
	case 1:
		return keys[0]
	}
	return jwt.VerificationKeySet{Keys: keys}
}

// keyFor is the jwt.Keyfunc: it picks keys by the token's alg (never by what
// the key looks like), then by kid, and type-checks what it returns.
func (ks *keySet) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	ak, ok := ks.byAlg[alg]
	if !ok || t.Method != methods[alg] {
		return nil, &keyError{fmt.Sprintf("algorithm %q is not accepted", alg)}
	}
	key := ak.all
	if kid, ok := t.Header["kid"].(string); ok && kid != "" {
		if k, ok := ak.byKid[kid]; ok {
			key = k
		} else if ak.unkeyed != nil {
			key = ak.unkeyed
		} else {
			return nil, &keyError{fmt.Sprintf("no %s key with kid %q", alg, kid)}
		}
	}
	if !fits(alg, key) {
		return nil, &keyError{fmt.Sprintf("configured key does not fit algorithm %s", alg)}
	}
	return key, nil
}

func fits(alg string, key any) bool {
	if set, ok := key.(jwt.VerificationKeySet); ok {
		for _, k := range set.Keys {
			if !keyFits(alg, k) {
				return false
			}
		}
		return len(set.Keys) > 0
	}
	return keyFits(alg, key)
}

// unknownKid reports whether a token that failed with err names in its
// header an algorithm a JWKS can serve (RS256, ES256 or EdDSA) and a kid
// that ks has no key of that algorithm for: the failure a fresh copy of
// the JWKS may cure. Malformed tokens never qualify.
func (ks *keySet) unknownKid(t *jwt.Token, err error) bool {
	if t == nil || errors.Is(err, jwt.ErrTokenMalformed) {
		return false
	}
	kid, _ := t.Header["kid"].(string)
	alg, _ := t.Header["alg"].(string)
	if kid == "" || alg == algHS256 || methods[alg] == nil {
		return false
	}
	ak, ok := ks.byAlg[alg]
	if !ok {
		return true
	}
	_, known := ak.byKid[kid]
	return !known
}
