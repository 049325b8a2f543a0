package auth_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// The tests in this file run in a synctest bubble: the JWKS is served in
// memory and time is the bubble's fake clock, so each fetch can be placed
// to the second.

// at sleeps until d after start and lets the bubble settle.
func at(start time.Time, d time.Duration) {
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
}

// TestJWKSRefreshSchedule: the JWKS is fetched again when its cache lifetime
// ends, that lifetime being max-age less Age, 15 min without one, clamped
// to [JWKSMinRefresh, JWKSMaxRefresh]; the keys it brings verify without a
// fetch of their own.
func TestJWKSRefreshSchedule(t *testing.T) {
	cases := []struct {
		name     string
		header   map[string]string
		min, max time.Duration
		want     time.Duration
	}{
		{"max-age", map[string]string{"Cache-Control": "public, max-age=300"}, 0, 0, 5 * time.Minute},
		{"no Cache-Control", nil, 0, 0, 15 * time.Minute},
		{"max-age under the min", map[string]string{"Cache-Control": "max-age=5"}, 0, 0, time.Minute},
		{"max-age over the max", map[string]string{"Cache-Control": "max-age=99999999999"}, 0, 2 * time.Hour, 2 * time.Hour},
		{"max-age over 24h", map[string]string{"Cache-Control": "max-age=604800"}, 0, 0, 24 * time.Hour},
		{"no-store", map[string]string{"Cache-Control": "no-store"}, 10 * time.Second, 0, 10 * time.Second},
		{"Age", map[string]string{"Cache-Control": "max-age=600", "Age": "500"}, 0, 0, 100 * time.Second},
		{"quoted max-age", map[string]string{"Cache-Control": `max-age="120"`}, 0, 0, 2 * time.Minute},
		{"bad max-age", map[string]string{"Cache-Control": "max-age=soon"}, 0, 0, 15 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := keys()
				srv, client := memJWKS(t, jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey)), header: tc.header})
				v := jwksVerifier(t, srv.url, client, func(c *auth.Config) {
					c.JWKSMinRefresh, c.JWKSMaxRefresh = tc.min, tc.max
				})
				start := time.Now()
				srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey)), header: tc.header})
				at(start, tc.want-time.Second)
				wantHits(t, srv, 1, "a second before the lifetime ends")
				at(start, tc.want+time.Second)
				wantHits(t, srv, 2, "a second after the lifetime ends")
				mustVerify(t, v, "new key", es(t, "new", k.ec2))
				wantHits(t, srv, 2, "after verifying the new key")
				at(start, 2*tc.want+2*time.Second)
				wantHits(t, srv, 3, "a second lifetime later")
			})
		})
	}
}

// TestJWKSRefetchSharedThenRateLimited: Verify calls that meet an unknown
// kid while a fetch runs wait for that one fetch; afterwards an unknown kid
// causes no fetch until JWKSRefetchInterval has passed.
func TestJWKSRefetchSharedThenRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := keys()
		srv, client := memJWKS(t, jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey))})
		v := jwksVerifier(t, srv.url, client, nil)
		start := time.Now()
		srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey), jwkOf("new", &k.ec2.PublicKey))})
		newTok := es(t, "new", k.ec2)

		release := srv.holdRequests()
		const n = 32
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = v.Verify(newTok) })
		}
		synctest.Wait() // one Verify in the request, the others waiting for it
		wantHits(t, srv, 2, "with every Verify waiting")
		release()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Verify %d: %v", i, err)
			}
		}

		// EdDSA: an algorithm the keys did not have yet.
		srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey), jwkOf("ed", k.ed.Public()))})
		edTok := sign(t, jwt.SigningMethodEdDSA, k.ed, "ed", good())
		at(start, auth.DefaultJWKSRefetchInterval-time.Second)
		mustRefuse(t, v, "new algorithm within the refetch interval", edTok, `algorithm "EdDSA" is not accepted`)
		wantHits(t, srv, 2, "within the refetch interval")
		at(start, auth.DefaultJWKSRefetchInterval)
		mustVerify(t, v, "new algorithm after the refetch interval", edTok)
		wantHits(t, srv, 3, "after the refetch interval")
	})
}

// TestJWKSFailedRefreshBackoff: a failed scheduled refresh keeps the keys,
// is logged, and is retried after 1s, 2s, 4s... at most JWKSMinRefresh
// apart; the first success brings the new keys and the normal schedule.
func TestJWKSFailedRefreshBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := keys()
		cc := map[string]string{"Cache-Control": "max-age=60"}
		srv, client := memJWKS(t, jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey)), header: cc})
		var logs syncBuffer
		v := jwksVerifier(t, srv.url, client, func(c *auth.Config) {
			c.JWKSMinRefresh = 30 * time.Second
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
		start := time.Now()
		oldTok := es(t, "old", k.ec)
		srv.serve(jwksResponse{status: http.StatusServiceUnavailable, body: []byte("down")})

		// Attempts at 60s, then 1, 2, 4, 8, 16, 30, 30 s apart.
		attempts := []time.Duration{60, 61, 63, 67, 75, 91, 121, 151}
		for i, a := range attempts {
			at(start, a*time.Second-time.Millisecond)
			wantHits(t, srv, int64(i+1), "just before attempt "+a.String())
			at(start, a*time.Second)
			wantHits(t, srv, int64(i+2), "at attempt "+a.String())
			mustVerify(t, v, "old key while the refresh fails", oldTok)
		}
		if got := logs.String(); strings.Count(got, "JWKS refresh failed; keeping the keys in use") != len(attempts) ||
			!strings.Contains(got, "status 503 Service Unavailable") || !strings.Contains(got, "retry_in=30s") {
			t.Errorf("logs:\n%s\nwant %d warnings of the failed refresh", got, len(attempts))
		}

		srv.serve(jwksResponse{body: jwksBytes(t, jwkOf("new", &k.ec2.PublicKey)), header: cc})
		last := attempts[len(attempts)-1] * time.Second
		at(start, last+30*time.Second)
		hits := srv.hits.Load()
		mustVerify(t, v, "new key after recovery", es(t, "new", k.ec2))
		wantHits(t, srv, hits, "after verifying the new key")
		at(start, last+90*time.Second-time.Millisecond)
		wantHits(t, srv, hits, "before the lifetime of the good fetch ends")
		at(start, last+90*time.Second)
		wantHits(t, srv, hits+1, "when the lifetime of the good fetch ends")
		if !strings.Contains(logs.String(), "kids=new") {
			t.Errorf("logs:\n%s\nwant the new kids", logs.String())
		}
	})
}

// TestJWKSFetchTimeout: a JWKS URL that does not answer fails New after
// JWKSFetchTimeout, and a later refresh the same way, keeping the keys.
func TestJWKSFetchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := keys()
		srv, client := memJWKS(t, jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey))})
		srv.holdRequests() // never released: requests end with their context
		start := time.Now()
		_, err := auth.New(auth.Config{JWKSURL: srv.url, JWKSClient: client})
		var je *auth.JWKSError
		if !errors.As(err, &je) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("New: %v, want a JWKSError for the deadline", err)
		}
		if took := time.Since(start); took != auth.JWKSFetchTimeout {
			t.Errorf("New gave up after %v, want %v", took, auth.JWKSFetchTimeout)
		}

		srv, client = memJWKS(t, jwksResponse{body: jwksBytes(t, jwkOf("old", &k.ec.PublicKey))})
		v := jwksVerifier(t, srv.url, client, nil)
		srv.holdRequests()
		start = time.Now()
		if err := v.Reload(); !errors.As(err, &je) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Reload: %v, want a JWKSError for the deadline", err)
		}
		if took := time.Since(start); took != auth.JWKSFetchTimeout {
			t.Errorf("Reload gave up after %v, want %v", took, auth.JWKSFetchTimeout)
		}
		mustVerify(t, v, "old key after a refresh timed out", es(t, "old", k.ec))
	})
}
