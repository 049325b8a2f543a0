package events_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
)

// Validate refuses what Values cannot write faithfully: an extension that
// is a contract field (Values would write the field twice, and a reader of
// the entry sees the extension's value) and a negative ttl (Values drops it).
func TestValidateRefusesWhatValuesGarbles(t *testing.T) {
	base := func() events.Envelope {
		return events.Envelope{Type: "chat.message", Tenant: "acme", To: events.ToUser("7"), Data: json.RawMessage(`{"a":1}`)}
	}
	cases := []struct {
		name  string
		mod   func(*events.Envelope)
		field string
		kind  error
	}{
		{"ext shadows tenant", func(e *events.Envelope) { e.Ext = map[string]string{"tenant": "globex"} }, "tenant", events.ErrUnknown},
		{"ext shadows to", func(e *events.Envelope) { e.Ext = map[string]string{"to": "tenant"} }, "to", events.ErrUnknown},
		{"ext without prefix", func(e *events.Envelope) { e.Ext = map[string]string{"trace": "x"} }, "trace", events.ErrUnknown},
		{"negative ttl", func(e *events.Envelope) { e.TTL = -time.Second }, "ttl", events.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := base()
			tc.mod(&e)
			err := e.Validate()
			if events.FieldOf(err) != tc.field || !errors.Is(err, tc.kind) {
				t.Fatalf("Validate = %v, want a %v problem with field %q", err, tc.kind, tc.field)
			}
		})
	}
	e := base()
	e.Ext = map[string]string{"x-trace": "abc"}
	if err := e.Validate(); err != nil {
		t.Fatalf("x- extension refused: %v", err)
	}
}

// Parse documents that the same entry always gives the same error: with
// several unknown fields, the one named must not depend on map order.
func TestParseUnknownFieldsDeterministic(t *testing.T) {
	f := map[string]string{"type": "a", "tenant": "acme", "to": "tenant", "data": "{}", "x-ok": "1"}
	for _, k := range []string{"zeta", "alpha", "mid", "beta", "omega", "kappa"} {
		f[k] = "v"
	}
	for range 200 {
		_, err := events.Parse(f)
		if got := events.FieldOf(err); got != "alpha" {
			t.Fatalf("Parse named field %q, want the first unknown field in byte order, %q", got, "alpha")
		}
	}
	e := events.Envelope{Type: "a", Tenant: "acme", To: events.ToTenant(), Data: json.RawMessage(`{}`),
		Ext: map[string]string{"zeta": "v", "alpha": "v", "mid": "v", "x-ok": "1"}}
	for range 200 {
		if got := events.FieldOf(e.Validate()); got != "alpha" {
			t.Fatalf("Validate named field %q, want %q", got, "alpha")
		}
	}
}

// An empty field name is not a field of the contract either.
func TestParseRefusesEmptyFieldName(t *testing.T) {
	f := map[string]string{"type": "a", "tenant": "acme", "to": "tenant", "data": "{}", "": "v"}
	if _, err := events.Parse(f); !errors.Is(err, events.ErrUnknown) {
		t.Fatalf("Parse with an empty field name = %v, want ErrUnknown", err)
	}
}
