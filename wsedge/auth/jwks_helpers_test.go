package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/wsedge/auth"
)

// jwksServer is a JWKS endpoint whose response the test changes while a
// Verifier uses it. It counts the requests it receives.
type jwksServer struct {
	url   string
	hits  atomic.Int64
	close func() // stops a loopback server

	mu   sync.Mutex
	resp jwksResponse
	hold chan struct{} // when set, requests wait until it is closed
}

// jwksResponse is what the server answers.
type jwksResponse struct {
	status int // 0 means 200
	body   []byte
	header map[string]string // e.g. Cache-Control
	length bool              // send a Content-Length
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	s.mu.Lock()
	resp, hold := s.resp, s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	if resp.length {
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	if resp.status != 0 {
		w.WriteHeader(resp.status)
	}
	w.Write(resp.body)
}

// serve changes the response from the next request on.
func (s *jwksServer) serve(r jwksResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resp = r
}

// holdRequests makes requests wait until release is called.
func (s *jwksServer) holdRequests() (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold = ch
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(ch)
	}
}

// startJWKS serves body on a real loopback listener (127.0.0.1).
func startJWKS(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{resp: jwksResponse{body: body}}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.url, s.close = hs.URL+"/.well-known/jwks.json", hs.Close
	return s
}

// memJWKS serves body in memory, through the client it returns, for tests
// in a synctest bubble (where sockets would not be durably blocking).
func memJWKS(t testing.TB, r jwksResponse) (*jwksServer, *http.Client) {
	t.Helper()
	s := &jwksServer{resp: r, url: "https://id.example/.well-known/jwks.json"}
	return s, &http.Client{Transport: handlerTransport{s}}
}

// handlerTransport runs requests through a handler in the caller's
// goroutine.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// jwksVerifier is a Verifier of url whose logs go to the test output; it is
// closed when the test ends.
func jwksVerifier(t testing.TB, url string, client *http.Client, mut func(*auth.Config)) *auth.Verifier {
	t.Helper()
	cfg := auth.Config{JWKSURL: url, JWKSClient: client, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if mut != nil {
		mut(&cfg)
	}
	return newVerifier(t, cfg)
}

// es signs good() with ES256 under kid.
func es(t testing.TB, kid string, key *ecdsa.PrivateKey) string {
	t.Helper()
	return sign(t, jwt.SigningMethodES256, key, kid, good())
}

func mustVerify(t testing.TB, v *auth.Verifier, what, token string) {
	t.Helper()
	if _, err := v.Verify(token); err != nil {
		t.Fatalf("%s: refused: %v", what, err)
	}
}

func mustRefuse(t testing.TB, v *auth.Verifier, what, token, msg string) {
	t.Helper()
	_, err := v.Verify(token)
	if !errors.Is(err, auth.ErrInvalid) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: got %v, want ErrInvalid saying %q", what, err, msg)
	}
}

func wantHits(t testing.TB, s *jwksServer, want int64, when string) {
	t.Helper()
	if got := s.hits.Load(); got != want {
		t.Fatalf("%s: %d JWKS requests, want %d", when, got, want)
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
