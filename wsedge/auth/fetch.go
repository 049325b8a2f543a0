package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fetcher gets the JWKS of one URL.
type fetcher struct {
	url              string
	client           *http.Client
	ownClient        bool // made by New: Close closes its idle connections
	minLife, maxLife time.Duration
	log              *slog.Logger

	skipMu  sync.Mutex
	skipped string // the keys the last fetch left out, to log changes only
}

// get fetches and parses the JWKS and returns its keys and cache lifetime.
// Every error is a *JWKSError.
func (f *fetcher) get(ctx context.Context) ([]verifyKey, time.Duration, error) {
	keys, life, err := f.fetch(ctx)
	if err != nil {
		return nil, 0, &JWKSError{URL: f.url, Problem: err}
	}
	return keys, life, nil
}

func (f *fetcher) fetch(ctx context.Context) ([]verifyKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, JWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its text repeats the URL
			err = ue.Err
		}
		return nil, 0, fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET: status %s", resp.Status)
	}
	body, err := readBody(resp)
	if err != nil {
		return nil, 0, err
	}
	var skipped []string
	keys, err := parseJWKSSkipping(bytes.TrimSpace(body), func(i int, kid string, err error) {
		skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, kid, err))
	})
	if err != nil {
		return nil, 0, err
	}
	f.noteSkipped(strings.Join(skipped, "; "))
	if len(keys) == 0 {
		return nil, 0, errors.New("holds no signing key")
	}
	for i := range keys {
		keys[i].src = f.url
	}
	if keys, err = combine(nil, keys); err != nil { // a kid twice
		return nil, 0, err
	}
	return keys, cacheLifetime(resp.Header, f.minLife, f.maxLife), nil
}

// noteSkipped logs the keys a fetch left out when they differ from the
// last fetch's.
func (f *fetcher) noteSkipped(skipped string) {
	f.skipMu.Lock()
	changed := skipped != f.skipped
	f.skipped = skipped
	f.skipMu.Unlock()
	if changed && skipped != "" {
		f.log.Warn("JWKS keys left out: not usable for tokens", "url", f.url, "keys", skipped)
	}
}

// readBody reads at most MaxJWKSBytes, refusing a larger body.
func readBody(resp *http.Response) ([]byte, error) {
	tooLarge := fmt.Errorf("body is larger than %d bytes", MaxJWKSBytes)
	if resp.ContentLength > MaxJWKSBytes {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > MaxJWKSBytes {
		return nil, tooLarge
	}
	return body, nil
}

// cacheLifetime is how long a response stays fresh: its Cache-Control
// max-age less its Age, or DefaultJWKSRefresh without a max-age, clamped
// to [minLife, maxLife]. no-store and no-cache mean minLife.
func cacheLifetime(h http.Header, minLife, maxLife time.Duration) time.Duration {
	life := DefaultJWKSRefresh
	if d, ok := maxAge(h); ok {
		life = d
	}
	return min(max(life, minLife), maxLife)
}

// maxAge reads the Cache-Control max-age (the first one) less the Age
// header; ok is false when there is none.
func maxAge(h http.Header) (d time.Duration, ok bool) {
	for _, line := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				if s, err := seconds(strings.Trim(strings.TrimSpace(val), `"`)); err == nil && !ok {
					d, ok = s, true
				}
			}
		}
	}
	if age, err := seconds(h.Get("Age")); ok && err == nil {
		d = max(d-age, 0)
	}
	return d, ok
}

// seconds parses a delta-seconds value (RFC 9111 1.2.2), saturating.
func seconds(s string) (time.Duration, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) || n > math.MaxInt64/uint64(time.Second) {
		return math.MaxInt64, nil
	}
	return time.Duration(n) * time.Second, err
}
