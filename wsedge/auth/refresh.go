package auth

import (
	"errors"
	"sync"
	"time"
)

// remote is the JWKS URL side of a Verifier: the fetcher, the refresh
// schedule and the fetch in flight. Its times are from the real clock.
type remote struct {
	fetcher
	refetchEvery time.Duration
	kick         chan struct{} // a fetch ended: the refresher recomputes its wait

	mu       sync.Mutex
	call     *fetchCall // the fetch in flight; nil when none
	lastKid  time.Time  // start of the last fetch for an unknown kid
	due      time.Time  // when the keys of the last good fetch go stale
	lastEnd  time.Time  // end of the last fetch
	failures int        // fetches failed in a row
}

// fetchCall is one fetch that concurrent callers share.
type fetchCall struct {
	done chan struct{}
	err  error
}

// Why a fetch runs, for logs.
const (
	reasonStale = "stale"       // the cache lifetime has passed, or the backoff after a failure
	reasonKid   = "unknown kid" // a token named a kid no key has
)

// errLimited: no fetch for an unknown kid now, one was started recently.
var errLimited = errors.New("JWKS refetch rate-limited")

func newRemote(cfg Config) *remote {
	r := &remote{refetchEvery: cfg.JWKSRefetchInterval, kick: make(chan struct{}, 1)}
	r.url, r.client = cfg.JWKSURL, cfg.JWKSClient
	r.minLife, r.maxLife, r.log = cfg.JWKSMinRefresh, cfg.JWKSMaxRefresh, cfg.Logger
	if r.client == nil {
		r.client, r.ownClient = defaultClient(), true
	}
	return r
}

// closeIdle closes the idle connections of the Verifier's own client.
func (r *remote) closeIdle() {
	if r != nil && r.ownClient {
		r.client.CloseIdleConnections()
	}
}

// record notes the end of a fetch: a success makes the keys fresh for
// life, a failure counts towards the backoff.
func (r *remote) record(life time.Duration, err error) {
	r.mu.Lock()
	r.lastEnd = time.Now()
	if err != nil {
		r.failures++
	} else {
		r.failures, r.due = 0, r.lastEnd.Add(life)
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// wait is how long until the next scheduled fetch: the cache lifetime
// after a success, the backoff after failures.
func (r *remote) wait(now time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures > 0 {
		return r.lastEnd.Add(r.backoff()).Sub(now)
	}
	return r.due.Sub(now)
}

// backoff is 1s doubling with each failure in a row, at most minLife. The
// caller holds r.mu.
func (r *remote) backoff() time.Duration {
	return min(time.Second<<min(max(r.failures-1, 0), 20), r.minLife)
}

// allowKid decides whether a token with an unknown kid may start a fetch
// and, if so, counts it. The caller holds r.mu.
func (r *remote) allowKid(now time.Time) bool {
	if !r.lastKid.IsZero() && now.Sub(r.lastKid) < r.refetchEvery {
		return false
	}
	r.lastKid = now
	return true
}

// refetch runs for a token whose kid no key has. It joins the fetch in
// flight, or starts one if allowKid says so, and returns the keys in use
// after it; it returns them at once when no fetch may start.
func (v *Verifier) refetch() *keySet {
	if v.ctx.Err() == nil {
		_ = v.refresh(reasonKid, v.remote.allowKid)
	}
	return v.keys.Load()
}

// refresh fetches the JWKS and installs its keys, or joins the fetch in
// flight. allow, when set, decides under the lock whether a new fetch may
// start. A failure is logged and returned; the keys in use stay.
func (v *Verifier) refresh(reason string, allow func(time.Time) bool) error {
	r := v.remote
	r.mu.Lock()
	if c := r.call; c != nil {
		r.mu.Unlock()
		<-c.done
		return c.err
	}
	if allow != nil && !allow(time.Now()) {
		r.mu.Unlock()
		return errLimited
	}
	c := &fetchCall{done: make(chan struct{})}
	r.call = c
	r.mu.Unlock()

	c.err = v.fetchInstall()
	r.mu.Lock()
	r.call = nil
	retry := r.backoff()
	r.mu.Unlock()
	close(c.done)
	if c.err != nil && v.ctx.Err() == nil {
		attrs := []any{"url", r.url, "reason", reason, "err", c.err}
		if reason == reasonStale {
			attrs = append(attrs, "retry_in", retry)
		}
		v.log.Warn("JWKS refresh failed; keeping the keys in use", attrs...)
	}
	return c.err
}

// fetchInstall fetches the JWKS and installs its keys beside the files'.
func (v *Verifier) fetchInstall() error {
	keys, life, err := v.remote.get(v.ctx)
	if err == nil {
		v.mu.Lock()
		if err = v.install(v.static, keys); err != nil {
			err = &JWKSError{URL: v.remote.url, Problem: err}
		}
		v.mu.Unlock()
	}
	v.remote.record(life, err)
	return err
}

// refreshLoop fetches the JWKS when its keys go stale, and after a failure
// when the backoff has passed, until Close.
func (v *Verifier) refreshLoop() {
	defer close(v.done)
	r := v.remote
	t := time.NewTimer(r.wait(time.Now()))
	defer t.Stop()
	for {
		select {
		case <-v.ctx.Done():
			return
		case <-t.C:
		case <-r.kick: // a fetch for an unknown kid or a Reload moved the schedule
		}
		if r.wait(time.Now()) <= 0 {
			_ = v.refresh(reasonStale, nil)
		}
		t.Reset(r.wait(time.Now()))
	}
}
