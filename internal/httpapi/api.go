package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/inbox"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/producer"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// MaxBody is the largest request body accepted (413 past it).
const MaxBody = 1 << 20

// MaxBatch is the most events of one POST /v1/publish/batch.
const MaxBatch = 1000

// Verifier checks a client's token; *auth.Verifier is the real one.
type Verifier interface {
	Verify(token string) (auth.Claims, error)
}

// Config wires an API. Redis and Verifier are required.
type Config struct {
	Redis    redis.UniversalClient
	Space    keys.Space
	Verifier Verifier
	// Keys are the service keys; nil turns the service endpoints off
	// (404), as without HERALD_API_KEYS.
	Keys *Keys
	// Partitions is the ingest partition count, as the dispatchers use it.
	Partitions int
	// Limits bound an event's data as the dispatchers do.
	Limits events.Limits
	// Allow decides whether an event of typ may be published for tenant now
	// (the rate rules that apply to publish); nil allows everything.
	Allow func(tenant, typ string) bool
	// Inbox tunes read state; the zero value is the default.
	Inbox inbox.Config
	// Timeout bounds the Redis work of one request. 0 means 5s.
	Timeout time.Duration
	// Logger gets one line per failed request to Redis; nil discards.
	Logger *slog.Logger
}

// API serves /v1/. Register its Collectors.
type API struct {
	cfg   Config
	inbox *inbox.Inbox
	prod  *producer.Producer
	mux   *http.ServeMux
	log   *slog.Logger
	m     metrics
}

// New returns an API.
func New(cfg Config) (*API, error) {
	if cfg.Redis == nil || cfg.Verifier == nil {
		return nil, errors.New("httpapi: config needs Redis and a Verifier")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg: cfg, log: cfg.Logger, m: newMetrics(),
		inbox: inbox.New(cfg.Redis, cfg.Space, cfg.Inbox),
		prod: producer.New(cfg.Redis, producer.WithSpace(cfg.Space), producer.WithPartitions(cfg.Partitions),
			producer.WithLimits(cfg.Limits)),
	}
	a.mux = http.NewServeMux()
	a.route("GET /v1/inbox", "inbox", a.client(a.list))
	a.route("GET /v1/inbox/unread", "inbox_unread", a.client(a.unread))
	a.route("POST /v1/inbox/read", "inbox_read", a.client(a.markRead))
	a.route("POST /v1/publish", "publish", a.service(a.publish))
	a.route("POST /v1/publish/batch", "publish_batch", a.service(a.publishBatch))
	a.route("GET /v1/presence", "presence", a.service(a.presence))
	a.route("GET /v1/online", "online", a.service(a.online))
	a.route("GET /v1/openapi.json", "openapi", func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
		return nil
	})
	a.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		a.m.observe("unknown", http.StatusNotFound, 0)
		writeError(w, &apiError{status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint: " + clip(r.URL.Path)})
	})
	return a, nil
}

// ServeHTTP serves /v1/.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Collectors are the API's metrics.
func (a *API) Collectors() []prometheus.Collector { return a.m.collectors() }

//go:embed openapi.json
var openAPI []byte

// handler serves one endpoint; an error it returns is written as the
// error answer.
type handler func(w http.ResponseWriter, r *http.Request) error

// route registers h at pattern (method and path) under a metrics name; a
// request to the path with another method gets 405.
func (a *API) route(pattern, name string, h handler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if err := h(sw, r); err != nil {
			ae := a.asAPIError(err, name)
			writeError(sw, ae)
		}
		a.m.observe(name, sw.status, time.Since(start))
	})
	method, path, _ := strings.Cut(pattern, " ")
	a.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		a.m.observe(name, http.StatusMethodNotAllowed, 0)
		w.Header().Set("Allow", method)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " " + path + ": use " + method})
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// apiError is an error answer.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Index   *int   `json:"index,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

func badRequest(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf(format, args...), Field: field}
}

// asAPIError turns what a handler returned into an answer: input errors
// are 400 naming the field, anything from Redis is 503.
func (a *API) asAPIError(err error, endpoint string) *apiError {
	var ae *apiError
	var ve *inbox.ValidationError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: "the body is over " + strconv.Itoa(MaxBody) + " bytes"}
	case errors.As(err, &ve):
		return badRequest(ve.Field, "%s", ve.Error())
	case errors.Is(err, context.Canceled):
		return &apiError{status: 499, Code: "canceled", Message: "the client went away"}
	}
	a.log.Warn("API request failed", "endpoint", endpoint, "err", err)
	return &apiError{status: http.StatusServiceUnavailable, Code: "unavailable", Message: "Redis is unavailable: try again later"}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, struct {
		Error *apiError `json:"error"`
	}{e})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// bearer returns the request's bearer credential.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// client wraps a client endpoint: the caller's JWT, verified as at /ws.
func (a *API) client(h func(w http.ResponseWriter, r *http.Request, u inbox.User) error) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := bearer(r)
		if !ok {
			return &apiError{status: http.StatusUnauthorized, Code: "unauthorized", Message: "send the client's JWT as Authorization: Bearer <token>"}
		}
		c, err := a.cfg.Verifier.Verify(tok)
		switch {
		case errors.Is(err, auth.ErrExpired):
			return &apiError{status: http.StatusUnauthorized, Code: "token_expired", Message: "token expired: get a fresh one"}
		case err != nil:
			return &apiError{status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid token"}
		}
		device := c.Device
		if device == "" {
			device = r.URL.Query().Get("device")
		}
		if device == "" {
			device = "default"
		}
		if !validID(device) {
			return badRequest("device", "device %q is not [A-Za-z0-9_.@-]{1,128}", clip(device))
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		return h(w, r.WithContext(ctx), inbox.User{Tenant: c.Tenant, User: c.Subject, Device: device})
	}
}

// service wraps a service endpoint: a key from the keys file.
func (a *API) service(h func(w http.ResponseWriter, r *http.Request, k *Key) error) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if a.cfg.Keys == nil {
			return &apiError{status: http.StatusNotFound, Code: "not_found", Message: "service endpoints are off: no API keys configured (HERALD_API_KEYS)"}
		}
		secret, ok := bearer(r)
		if !ok {
			return &apiError{status: http.StatusUnauthorized, Code: "unauthorized", Message: "send a service key as Authorization: Bearer <key>"}
		}
		k := a.cfg.Keys.Lookup(secret)
		if k == nil {
			return &apiError{status: http.StatusUnauthorized, Code: "unauthorized", Message: "unknown service key"}
		}
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		return h(w, r.WithContext(ctx), k)
	}
}

func forbidden(k *Key, tenant string) *apiError {
	return &apiError{status: http.StatusForbidden, Code: "forbidden", Field: "tenant",
		Message: "key " + k.Name + " may not act on tenant " + clip(tenant)}
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '@' || c == '-') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
