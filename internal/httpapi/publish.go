package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
)

// POST /v1/publish: one event with the stream-entry fields.
func (a *API) publish(w http.ResponseWriter, r *http.Request, k *Key) error {
	var raw json.RawMessage
	if err := decodeStrict(r, &raw); err != nil {
		return err
	}
	env, err := a.envelope(raw, k, -1)
	if err != nil {
		return err
	}
	ids, err := a.append(r, []events.Envelope{env})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, struct {
		StreamID string `json:"stream_id"`
	}{ids[0]})
}

// POST /v1/publish/batch: {"events":[...]}, all or nothing.
func (a *API) publishBatch(w http.ResponseWriter, r *http.Request, k *Key) error {
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decodeStrict(r, &body); err != nil {
		return err
	}
	switch n := len(body.Events); {
	case n == 0:
		return badRequest("events", "events: missing or empty")
	case n > MaxBatch:
		return badRequest("events", "%d events: at most %d in a batch", n, MaxBatch)
	}
	envs := make([]events.Envelope, len(body.Events))
	for i, raw := range body.Events {
		var err error
		if envs[i], err = a.envelope(raw, k, i); err != nil {
			return err
		}
	}
	ids, err := a.append(r, envs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, struct {
		StreamIDs []string `json:"stream_ids"`
	}{ids})
}

// append checks the rate rules for every event, then appends them all in
// one pipeline, as the producer does.
func (a *API) append(r *http.Request, envs []events.Envelope) ([]string, error) {
	if a.cfg.Allow != nil {
		for i, env := range envs {
			if !a.cfg.Allow(env.Tenant, env.Type) {
				e := &apiError{status: http.StatusTooManyRequests, Code: "rate_limited",
					Message: "a rate rule limits publishing " + env.Type + " for tenant " + env.Tenant + ": retry later"}
				if len(envs) > 1 {
					e.Index = &i
				}
				return nil, e
			}
		}
	}
	msgs := make([]producer.Message, len(envs))
	for i, env := range envs {
		msgs[i] = producer.Envelope(env)
	}
	ids, err := a.prod.PublishBatch(r.Context(), msgs)
	var be *producer.BatchError
	var ve *events.ValidationError
	if errors.As(err, &be) && errors.As(err, &ve) { // validated again by the producer
		return nil, indexed(badRequest(ve.Field, "%s", ve.Error()), be.Index, len(envs))
	}
	return ids, err
}

// envelope reads one event of the API (i: its index in a batch, or -1):
// each field becomes the stream entry's field, and the entry is validated
// exactly as the dispatcher would read it. A key bound to a tenant fills
// in a missing tenant and refuses another.
func (a *API) envelope(raw json.RawMessage, k *Key, i int) (events.Envelope, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return events.Envelope{}, indexed(badRequest("", "an event must be a JSON object"), i, 2)
	}
	fields := make(map[string]string, len(obj))
	for name, v := range obj {
		s, err := fieldValue(name, v)
		if err != nil {
			return events.Envelope{}, indexed(badRequest(name, "field %q: %v", name, err), i, 2)
		}
		fields[name] = s
	}
	if _, ok := fields[events.FieldTenant]; !ok && k.Tenant != "*" {
		fields[events.FieldTenant] = k.Tenant
	}
	env, err := a.cfg.Limits.Parse(fields)
	var ve *events.ValidationError
	if errors.As(err, &ve) {
		return events.Envelope{}, indexed(badRequest(ve.Field, "%s", ve.Error()), i, 2)
	}
	if err != nil {
		return events.Envelope{}, indexed(badRequest("", "%v", err), i, 2)
	}
	if !k.MayActOn(env.Tenant) {
		return events.Envelope{}, indexed(forbidden(k, env.Tenant), i, 2)
	}
	return env, nil
}

// fieldValue is a JSON field as its stream-entry string: data and
// extension values as JSON text (data must be an object), ttl and ts as
// numbers, the rest as strings.
func fieldValue(name string, v json.RawMessage) (string, error) {
	v = bytes.TrimSpace(v)
	switch name {
	case events.FieldData:
		return string(v), nil
	case events.FieldTTL, events.FieldTS:
		var n json.Number
		if err := json.Unmarshal(v, &n); err != nil {
			var s string
			if json.Unmarshal(v, &s) == nil {
				if _, err := strconv.ParseInt(s, 10, 64); err == nil {
					return s, nil
				}
			}
			return "", errors.New("want a whole number")
		}
		if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
			return "", errors.New("want a whole number")
		}
		return n.String(), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("want a string")
	}
	return s, nil
}

// indexed adds a batch index to a 400 (n > 1 and i >= 0 mean a batch).
func indexed(e *apiError, i, n int) *apiError {
	if i >= 0 && n > 1 {
		e.Index = &i
		e.Message = "events[" + strconv.Itoa(i) + "]: " + e.Message
	}
	return e
}
