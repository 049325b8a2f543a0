// Package auth verifies the JWTs that WebSocket clients present when they
// connect to the edge (contract section 3) and mints development tokens.
//
// A [Verifier] is built once from a [Config]: an HS256 secret (development),
// key files holding public keys, PEM (RSA → RS256, ECDSA P-256 → ES256,
// Ed25519 → EdDSA) or JWKS (keys chosen by kid), and/or a JWKS URL; the keys
// of all of them are accepted together. Only the algorithms of configured
// keys are accepted; "none" never is. The key for a token is chosen by the
// token's alg and type-checked against it, so a public key can never serve
// as an HMAC secret.
//
// Keys rotate without a restart. The JWKS URL is fetched at [New], then
// again when its cache lifetime (Cache-Control max-age, clamped) ends, and
// at once, rate-limited and shared by concurrent callers, when a token
// names a kid no key has; a failed fetch keeps the keys of the last good
// one. [Verifier.Reload] re-reads the key files and re-fetches the URL
// (SIGHUP), keeping the old keys if the new files are bad. Tokens already
// accepted are not checked again: sessions stay up across a rotation.
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
// safe for concurrent use. With a JWKS URL it owns a refresher goroutine
// and the idle connections of its HTTP client until [Verifier.Close].
package auth
