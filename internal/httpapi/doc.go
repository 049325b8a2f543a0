// Package httpapi serves Herald's HTTP API, version 1, on the edge's public
// listener: the inbox with read state for clients (their own JWT), and
// publish, presence and online counts for services (keys from
// HERALD_API_KEYS), with the OpenAPI document at /v1/openapi.json.
//
// Every answer is JSON; every error is
// {"error":{"code","message","field"?,"index"?}} with the status the
// contract gives it (400 invalid input, 401 no or bad credentials, 403 not
// allowed, 404 unknown path or no service keys configured, 405 wrong
// method, 413 body over 1 MiB, 429 rate limited, 503 Redis unavailable).
//
// Publishing goes through the producer package, so an event takes exactly
// the producer's validation and append (stream, partition, idempotency
// key). Read state and unread counts come from internal/inbox.
//
// cmd/herald mounts the API next to the edge; the API imports the producer
// and the edge's token verifier, not the edge. An API is safe for
// concurrent use.
package httpapi
