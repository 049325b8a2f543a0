package producer_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
)

// badInputs are messages the contract refuses, with the field that must be
// named and the kind of problem.
func badInputs() []struct {
	name  string
	msg   producer.Message
	field string
	kind  error
} {
	o := order("o-1", "42")
	raw := func(mod func(*events.Envelope)) producer.Message {
		e := events.Envelope{Type: "chat.message", Tenant: "acme", To: events.ToUser("7"), Data: json.RawMessage(`{"a":1}`)}
		mod(&e)
		return producer.Envelope(e)
	}
	many := make([]string, events.MaxUsers+1)
	for i := range many {
		many[i] = "u" + strconv.Itoa(i)
	}
	return []struct {
		name  string
		msg   producer.Message
		field string
		kind  error
	}{
		{"missing type", raw(func(e *events.Envelope) { e.Type = "" }), "type", events.ErrMissing},
		{"bad type", raw(func(e *events.Envelope) { e.Type = "Chat Message" }), "type", events.ErrInvalid},
		{"missing tenant", producer.Event(o, producer.Tenant("")), "tenant", events.ErrMissing},
		{"bad tenant", producer.Event(o, producer.Tenant("ac:me")), "tenant", events.ErrInvalid},
		{"no default audience", producer.Event(&events.PromotionEvent{Campaign: "c"}, producer.Tenant("acme")), "to", events.ErrMissing},
		{"buyer missing", producer.Event(order("o-1", ""), producer.Tenant("acme")), "to", events.ErrMissing},
		{"raw without to", raw(func(e *events.Envelope) { e.To = events.Audience{} }), "to", events.ErrMissing},
		{"empty audience", producer.Event(o, producer.Tenant("acme"), producer.To(events.Audience{})), "to", events.ErrInvalid},
		{"malformed audience", producer.Event(o, producer.Tenant("acme"),
			producer.To(events.Audience{Kind: events.AudienceUser, Users: []string{"1", "2"}})), "to", events.ErrInvalid},
		{"malformed raw audience", raw(func(e *events.Envelope) {
			// the data has a buyer: a malformed To must not fall back to it
			e.Type, e.Data, e.To = "order.placed", json.RawMessage(`{"buyer_id":"42"}`), events.Audience{Kind: events.AudienceUser}
		}), "to", events.ErrInvalid},
		{"bad user id", producer.Event(o, producer.Tenant("acme"), producer.To(events.ToUser("a b"))), "to", events.ErrInvalid},
		{"bad topic", producer.Event(o, producer.Tenant("acme"), producer.To(events.ToTopic("a:b"))), "to", events.ErrInvalid},
		{"too many users", producer.Event(o, producer.Tenant("acme"), producer.To(events.ToUsers(many...))), "to", events.ErrTooLarge},
		{"data not an object", raw(func(e *events.Envelope) { e.Data = json.RawMessage(`[1,2]`) }), "data", events.ErrInvalid},
		{"data not json", raw(func(e *events.Envelope) { e.Data = json.RawMessage(`{"a":`) }), "data", events.ErrInvalid},
		{"data missing", raw(func(e *events.Envelope) { e.Data = nil }), "data", events.ErrMissing},
		{"data too large", producer.Event(&events.PromotionEvent{Body: strings.Repeat("x", events.DefaultMaxData)},
			producer.Tenant("acme"), producer.To(events.ToTenant())), "data", events.ErrTooLarge},
		{"key with space", producer.Event(o, producer.Tenant("acme"), producer.IdempotencyKey("a b")), "id", events.ErrInvalid},
		{"key too long", producer.Event(o, producer.Tenant("acme"), producer.IdempotencyKey(strings.Repeat("k", 129))), "id", events.ErrInvalid},
		{"bad device", producer.Event(o, producer.Tenant("acme"), producer.Device("my phone")), "device", events.ErrInvalid},
		{"device for a topic", producer.Event(o, producer.Tenant("acme"), producer.To(events.ToTopic("t")), producer.Device("phone")), "device", events.ErrInvalid},
		{"negative ttl", producer.Event(o, producer.Tenant("acme"), producer.TTL(-time.Second)), "ttl", events.ErrInvalid},
		{"ttl too long", producer.Event(o, producer.Tenant("acme"), producer.TTL(events.MaxTTL+time.Second)), "ttl", events.ErrInvalid},
		{"ts before 1970", producer.Event(o, producer.Tenant("acme"), producer.At(time.Unix(-5, 0))), "ts", events.ErrInvalid},
		{"unknown field", raw(func(e *events.Envelope) { e.Ext = map[string]string{"trace": "x"} }), "trace", events.ErrUnknown},
	}
}

func TestRejectsNamingTheField(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb)
	for _, tc := range badInputs() {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.PublishBatch(t.Context(), []producer.Message{tc.msg})
			var ve *events.ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field || !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want a %v problem with field %q", err, tc.kind, tc.field)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tc.field)) {
				t.Fatalf("message %q does not name field %q", err, tc.field)
			}
		})
	}
	if n := rdb.Exists(t.Context(), "herald:events").Val(); n != 0 {
		t.Fatal("a refused message was written")
	}
}

func TestPublishRefusesBeforeSending(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	ctx := t.Context()
	_, err := p.Publish(ctx, &events.PromotionEvent{Campaign: "c"})
	if events.FieldOf(err) != "to" || !strings.HasPrefix(err.Error(), `publish marketing.promotion: field "to": is required`) {
		t.Fatalf("err = %v", err)
	}
	_, err = p.PublishEnvelope(ctx, events.Envelope{Type: "chat.message", To: events.ToTenant(), Data: json.RawMessage(`"x"`)})
	if events.FieldOf(err) != "data" || !strings.HasPrefix(err.Error(), `publish chat.message: field "data"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := p.Publish(ctx, nil); !errors.Is(err, producer.ErrNilEvent) {
		t.Fatalf("nil event: err = %v", err)
	}
	var nilOrder *events.OrderPlacedEvent
	if _, err := p.Publish(ctx, nilOrder); !errors.Is(err, producer.ErrNilEvent) {
		t.Fatalf("typed nil event: err = %v", err)
	}
	if n := rdb.Exists(ctx, "herald:events").Val(); n != 0 {
		t.Fatal("a refused event was written")
	}
}

func TestLimitsApply(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithLimits(events.Limits{MaxData: 64}))
	_, err := p.Publish(t.Context(), order("o-1", "42")) // about 130 bytes of JSON
	if !errors.Is(err, events.ErrTooLarge) || events.FieldOf(err) != "data" {
		t.Fatalf("err = %v, want data too large", err)
	}
}

// Typed events' data is checked by the producer itself (it is not parsed a
// second time): its errors must read like events' own.
func TestEncodedDataErrorsMatchEvents(t *testing.T) {
	_, rdb := setup(t)
	limits := events.Limits{MaxData: 64}
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithLimits(limits))
	ev := order("o-1", "42")
	_, err := p.Publish(t.Context(), ev)
	var got *events.ValidationError
	if !errors.As(err, &got) {
		t.Fatalf("err = %v", err)
	}
	_, err = limits.Parse(map[string]string{"type": "order.placed", "tenant": "acme", "to": "user:42", "data": string(mustJSON(t, ev))})
	var want *events.ValidationError
	if !errors.As(err, &want) {
		t.Fatalf("events accepted %d bytes with MaxData 64", len(mustJSON(t, ev)))
	}
	if *got != *want {
		t.Fatalf("producer says %+v, events says %+v", *got, *want)
	}
}

type listEvent []int

func (listEvent) EventType() string { return "list.event" }

func TestEncodedDataMustBeAnObject(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	_, err := p.Publish(t.Context(), listEvent{1, 2}, producer.To(events.ToTenant()))
	if !errors.Is(err, events.ErrInvalid) || events.FieldOf(err) != "data" {
		t.Fatalf("err = %v, want data must be a JSON object", err)
	}
}

// rawEvent carries a pre-encoded part, which Marshal passes through as it is.
type rawEvent struct {
	Note json.RawMessage `json:"note"`
}

func (rawEvent) EventType() string { return "raw.event" }

// A typed event whose raw part holds invalid UTF-8 is refused before it is
// sent, like a raw envelope's: clients would get it in a text frame.
func TestEncodedDataMustBeUTF8(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	_, err := p.Publish(t.Context(), rawEvent{Note: json.RawMessage("\"\xff\x88\"")}, producer.To(events.ToTenant()))
	if !errors.Is(err, events.ErrInvalid) || events.FieldOf(err) != "data" || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v, want data must be valid UTF-8", err)
	}
	_, err = p.PublishEnvelope(t.Context(), events.Envelope{Type: "raw.event", Tenant: "acme", To: events.ToTenant(),
		Data: json.RawMessage("{\"a\":\"\xff\"}")})
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("raw envelope: err = %v, want data must be valid UTF-8", err)
	}
}
