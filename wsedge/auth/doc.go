// Package auth verifies the JWTs that WebSocket clients present when they
// connect to the edge (contract section 3) and mints development tokens.
//
// A [Verifier] is built once from a [Config]: an HS256 secret (development)
// and/or key files holding public keys, PEM (RSA → RS256, ECDSA P-256 →
// ES256, Ed25519 → EdDSA) or JWKS (keys chosen by kid). Only the algorithms
// of configured keys are accepted; "none" never is. The key for a token is
// chosen by the token's alg and type-checked against it, so a public key can
// never serve as an HMAC secret. [Verifier.Reload] re-reads the key files for
// rotation and keeps the old keys if the new files are bad.
//
// [Verifier.Verify] returns the token's [Claims] (sub, tenant, exp required;
// device and topics optional, all checked against the contract's character
// classes) or an error that matches [ErrInvalid] (close code 4001) or
// [ErrExpired] (close code 4004) with a message fit for a log line.
//
// [Mint] signs HS256 tokens for `herald token` and tests.
//
// The package imports only the standard library, golang-jwt/jwt/v5 and
// Herald's events package; it is for wsedge and cmd/herald. A Verifier is
// safe for concurrent use.
package auth
