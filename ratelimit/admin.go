package ratelimit

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of the admin API.
const (
	HeaderVersion   = "X-Herald-Rules-Version"
	HeaderUpdatedBy = "X-Herald-Rules-Updated-By"
	HeaderUpdatedAt = "X-Herald-Rules-Updated-At"
)

// AdminHandler serves the rules over HTTP, for mounting at /admin/rules on
// the admin listener:
//
//   - GET returns the stored YAML (application/yaml) with its version in
//     ETag ("7") and X-Herald-Rules-Version, and who and when in
//     X-Herald-Rules-Updated-By and -Updated-At; 404 when none is stored.
//   - PUT stores the body as the next version (Store.Put): 200 with the
//     new version; 400 with one problem per line (line, rule, field) when
//     it is invalid; 409 when If-Match names a version that is no longer
//     the stored one (If-Match: "0" means none stored yet); 413 past
//     MaxDocumentSize. The caller is recorded from X-Herald-Updated-By, or
//     "admin-api".
//
// Every request needs "Authorization: Bearer <token>" (compared in
// constant time; 401 otherwise). With an empty token the API is off and
// answers 404.
func AdminHandler(store *Store, token string) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			http.NotFound(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if sum := sha256.Sum256([]byte(got)); !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald admin"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <HERALD_ADMIN_TOKEN>", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			adminGet(w, r, store)
		case http.MethodPut:
			adminPut(w, r, store)
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

func adminGet(w http.ResponseWriter, r *http.Request, store *Store) {
	st, err := store.Get(r.Context())
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "no rules stored yet", http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	setMeta(w, st.Meta)
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	_, _ = w.Write(st.YAML)
}

func adminPut(w http.ResponseWriter, r *http.Request, store *Store) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDocumentSize))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("document larger than %d bytes", MaxDocumentSize), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	version := int64(AnyVersion)
	if m := r.Header.Get("If-Match"); m != "" && m != "*" {
		v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(m, "W/"), `"`), 10, 64)
		if err != nil || v < 0 {
			http.Error(w, fmt.Sprintf("If-Match %q: want a version like \"7\"", m), http.StatusBadRequest)
			return
		}
		version = v
	}
	who := r.Header.Get("X-Herald-Updated-By")
	if who == "" {
		who = "admin-api"
	}
	meta, err := store.PutIf(r.Context(), body, who, version)
	var conflict *ConflictError
	switch {
	case errors.Is(err, ErrInvalid):
		http.Error(w, "invalid rules document, nothing changed:\n"+err.Error(), http.StatusBadRequest)
		return
	case errors.As(err, &conflict):
		w.Header().Set(HeaderVersion, strconv.FormatInt(conflict.Current, 10))
		http.Error(w, err.Error()+": GET the rules again and retry", http.StatusConflict)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	setMeta(w, meta)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "applied version %d\n", meta.Version)
}

func setMeta(w http.ResponseWriter, m Meta) {
	h := w.Header()
	h.Set("ETag", `"`+strconv.FormatInt(m.Version, 10)+`"`)
	h.Set(HeaderVersion, strconv.FormatInt(m.Version, 10))
	h.Set(HeaderUpdatedBy, m.UpdatedBy)
	h.Set(HeaderUpdatedAt, m.UpdatedAt.UTC().Format(time.RFC3339))
}
