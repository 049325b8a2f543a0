package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/heraldrt/herald/internal/inbox"
)

// GET /v1/inbox?limit&before&unread
func (a *API) list(w http.ResponseWriter, r *http.Request, u inbox.User) error {
	q := r.URL.Query()
	var iq inbox.Query
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return badRequest("limit", "limit %q is not a number", clip(s))
		}
		if n == 0 {
			return badRequest("limit", "limit 0: want 1 to %d", inbox.MaxLimit)
		}
		iq.Limit = n
	}
	iq.Before = q.Get("before")
	switch s := q.Get("unread"); s {
	case "", "false", "0":
	case "true", "1":
		iq.Unread = true
	default:
		return badRequest("unread", "unread %q: want true or false", clip(s))
	}
	page, err := a.inbox.List(r.Context(), u, iq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

type unreadAnswer struct {
	Unread int `json:"unread"`
}

// GET /v1/inbox/unread
func (a *API) unread(w http.ResponseWriter, r *http.Request, u inbox.User) error {
	n, err := a.inbox.Unread(r.Context(), u)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, unreadAnswer{n})
}

// POST /v1/inbox/read {"ids":[...]} | {"up_to":"<id>"} | {"all":true}
func (a *API) markRead(w http.ResponseWriter, r *http.Request, u inbox.User) error {
	var body struct {
		IDs  []string `json:"ids"`
		UpTo string   `json:"up_to"`
		All  bool     `json:"all"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	n, err := a.inbox.MarkRead(r.Context(), u, inbox.Mark{IDs: body.IDs, UpTo: body.UpTo, All: body.All})
	if err != nil {
		return err
	}
	// Every live session of the user, on any edge, hears of it. Best
	// effort: the read state is stored either way.
	if err := a.inbox.Announce(r.Context(), u.Tenant, u.User); err != nil {
		a.log.Warn("could not announce a read state change", "tenant", u.Tenant, "user", u.User, "err", err)
	}
	return writeJSON(w, http.StatusOK, unreadAnswer{n})
}

// decodeStrict reads one JSON object into v, refusing unknown fields and
// trailing data with a 400 (or 413 when the body is too large).
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Only white space may follow: dec.More alone lets a stray '}' or ']'
	// through.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("", "the body holds more than one JSON value")
	}
	return nil
}

// jsonError turns a decoding error into an answer naming the field when
// the decoder knows it.
func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &te):
		return badRequest(te.Field, "field %q: %s is not a %s", te.Field, te.Value, te.Type)
	case errors.As(err, &se):
		return badRequest("", "the body is not valid JSON: %v", err)
	}
	msg := err.Error()
	if f, ok := unknownField(msg); ok {
		return badRequest(f, "unknown field %q", f)
	}
	return badRequest("", "the body is not a valid JSON object: %s", clip(msg))
}

// unknownField reads the field out of encoding/json's
// `json: unknown field "x"`.
func unknownField(msg string) (string, bool) {
	const p = `json: unknown field "`
	if !strings.HasPrefix(msg, p) || !strings.HasSuffix(msg, `"`) {
		return "", false
	}
	return msg[len(p) : len(msg)-1], true
}
