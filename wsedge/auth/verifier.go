package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks connection tokens. It is safe for concurrent use; Reload
// and the JWKS refresh may run while Verify does. A Verifier with a JWKS URL
// runs a refresher goroutine until [Verifier.Close].
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	keys   atomic.Pointer[keySet]
	reload sync.Mutex // serialises Reload

	mu         sync.Mutex  // guards static and remoteKeys; serialises installs
	static     []verifyKey // the secret's and the files' keys
	remoteKeys []verifyKey // the JWKS URL's keys, the last good fetch

	remote    *remote // nil without a JWKS URL
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{} // closed when the refresher has stopped
	closeOnce sync.Once
}

// New loads the keys of cfg. A key file that cannot be used is refused with a
// [*KeyFileError] naming it, a JWKS URL whose first fetch fails with a
// [*JWKSError] (New waits at most JWKSFetchTimeout for it); no key at all is
// [ErrNoKeys]. With a JWKS URL, New starts the refresher: call Close when
// done with the Verifier.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cfg.HS256Secret = slices.Clone(cfg.HS256Secret)
	cfg.KeyFiles = slices.Clone(cfg.KeyFiles)
	v := &Verifier{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	if cfg.JWKSURL != "" {
		v.remote = newRemote(cfg)
	}
	if err := v.Reload(); err != nil {
		v.cancel()
		v.remote.closeIdle()
		return nil, err
	}
	if v.remote == nil {
		close(v.done)
	} else {
		go v.refreshLoop()
	}
	return v, nil
}

// Close stops the JWKS refresher and waits for it; Verify keeps working
// with the keys it has, and no longer fetches. It is safe to call twice,
// and a no-op without a JWKS URL. It always returns nil.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		v.cancel()
		<-v.done
		v.remote.closeIdle()
	})
	return nil
}

// Reload re-reads the key files and re-fetches the JWKS URL (key rotation,
// SIGHUP). If a file is bad it returns a [*KeyFileError] naming it and the
// keys in use stay as they were. A failed fetch keeps the URL's keys of
// the last good fetch: Reload installs the new files' keys with them and
// returns the [*JWKSError].
func (v *Verifier) Reload() error {
	v.reload.Lock()
	defer v.reload.Unlock()
	static, err := v.loadStatic()
	if err != nil {
		return err
	}
	var (
		fetched  []verifyKey
		life     time.Duration
		fetchErr error
	)
	if v.remote != nil {
		fetched, life, fetchErr = v.remote.get(v.ctx)
		if fetchErr != nil {
			v.remote.record(0, fetchErr)
			if v.keys.Load() == nil {
				return fetchErr // New: the first fetch must succeed
			}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	remoteKeys, ok := v.remoteKeys, v.remote != nil && fetchErr == nil
	if ok {
		remoteKeys = fetched
	}
	if err := v.install(static, remoteKeys); err != nil {
		if ok {
			v.remote.record(0, err)
		}
		return err
	}
	if ok {
		v.remote.record(life, nil)
	}
	return fetchErr
}

// loadStatic returns the keys of the secret and the key files.
func (v *Verifier) loadStatic() ([]verifyKey, error) {
	var keys []verifyKey
	if v.cfg.HS256Secret != nil {
		keys = append(keys, verifyKey{alg: algHS256, key: v.cfg.HS256Secret})
	}
	fileKeys, err := loadKeys(v.cfg.KeyFiles)
	if err != nil {
		return nil, err
	}
	return append(keys, fileKeys...), nil
}

// install makes static and remoteKeys the keys in use, or changes nothing
// and returns why it cannot. The caller holds v.mu.
func (v *Verifier) install(static, remoteKeys []verifyKey) error {
	all, err := combine(static, remoteKeys)
	if err != nil {
		return err
	}
	ks, err := newKeySet(all)
	if err != nil {
		return err
	}
	if v.remote != nil {
		if old, now := kids(v.remoteKeys), kids(remoteKeys); v.keys.Load() == nil || !slices.Equal(old, now) {
			v.log.Info("JWKS keys in use", "url", v.cfg.JWKSURL, "kids", strings.Join(now, ","))
		}
	}
	v.static, v.remoteKeys = static, remoteKeys
	v.keys.Store(ks)
	return nil
}

// kids lists the kids of keys, sorted.
func kids(keys []verifyKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.kid)
	}
	slices.Sort(out)
	return out
}

// Algorithms lists the accepted algorithms (those with a configured key),
// for start-up logs.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.keys.Load().algs) }

// Verify checks a token's signature and claims and returns its claims. Every
// error matches [ErrInvalid] or [ErrExpired] (errors.Is) and, when the jwt
// library found the problem, the jwt error too; its message says what is
// wrong, e.g. "token invalid: claim tenant is missing".
//
// With a JWKS URL, a token signed with RS256, ES256 or EdDSA under a kid
// that no key has makes Verify fetch the JWKS again and retry once: it
// joins a fetch in flight, or starts one if none was started for an
// unknown kid in the last JWKSRefetchInterval, or else refuses at once. So
// Verify may wait for a fetch, at most JWKSFetchTimeout.
func (v *Verifier) Verify(token string) (Claims, error) {
	if token == "" {
		return Claims{}, invalid(nil, "empty token")
	}
	if len(token) > MaxTokenLen {
		return Claims{}, invalid(nil, "longer than %d bytes", MaxTokenLen)
	}
	ks := v.keys.Load()
	var wc wireClaims
	t, err := ks.parser.ParseWithClaims(token, &wc, ks.keyfunc)
	if err != nil && v.remote != nil && ks.unknownKid(t, err) {
		if fresh := v.refetch(); fresh != ks {
			wc = wireClaims{}
			_, err = fresh.parser.ParseWithClaims(token, &wc, fresh.keyfunc)
		}
	}
	if err != nil {
		return Claims{}, parseError(err)
	}
	return v.checkClaims(&wc)
}

// parseError turns a jwt parse error (format, alg, key or signature) into an
// ErrInvalid with a readable message that still matches the jwt error.
func parseError(err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return invalid(err, "%s", ke.msg)
	}
	msg := err.Error()
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
		if alg, ok := strings.CutPrefix(msg, jwt.ErrTokenSignatureInvalid.Error()+": signing method "); ok {
			return invalid(err, "algorithm %q is not accepted", strings.TrimSuffix(alg, " is invalid"))
		}
	}
	// jwt messages start with "token is malformed", "token signature is
	// invalid"...: drop the leading "token " after our own "token invalid: ".
	msg = strings.TrimPrefix(msg, "token ")
	msg = strings.TrimPrefix(msg, "is ")
	return invalid(err, "%s", dedupe(msg))
}

// dedupe drops a ": "-separated part equal to the one before it
// ("signature is invalid: signature is invalid").
func dedupe(msg string) string {
	parts := strings.Split(msg, ": ")
	return strings.Join(slices.Compact(parts), ": ")
}

// defaultClient is the JWKS client when Config has none.
func defaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, Timeout: JWKSFetchTimeout, CheckRedirect: noDowngrade}
}

// noDowngrade follows up to 10 redirects but never from https to http.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused redirect from https to %s", req.URL.Redacted())
	}
	return nil
}
