package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
)

func valid() map[string]string {
	return map[string]string{
		"type":   "order.placed",
		"tenant": "acme",
		"to":     "user:42",
		"data":   `{"order_id":"o-1","buyer_id":"42"}`,
	}
}

func with(kv ...string) map[string]string {
	f := valid()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(f, kv[i])
			continue
		}
		f[kv[i]] = kv[i+1]
	}
	return f
}

func TestParseValid(t *testing.T) {
	e, err := events.Parse(with("id", "k-1", "device", "phone", "ttl", "60", "ts", "1732550000000", "x-trace", "abc"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "order.placed" || e.Tenant != "acme" || e.To.String() != "user:42" ||
		e.ID != "k-1" || e.Device != "phone" || e.TTL != time.Minute || e.TS != 1732550000000 || e.Ext["x-trace"] != "abc" {
		t.Fatalf("parsed %+v", e)
	}
}

func TestParseRejects(t *testing.T) {
	big := `{"a":"` + strings.Repeat("x", events.DefaultMaxData) + `"}`
	cases := []struct {
		name   string
		fields map[string]string
		field  string
		kind   error
	}{
		{"missing type", with("type", "<delete>"), "type", events.ErrMissing},
		{"bad type", with("type", "Order Placed"), "type", events.ErrInvalid},
		{"long type", with("type", strings.Repeat("a", 65)), "type", events.ErrInvalid},
		{"missing tenant", with("tenant", "<delete>"), "tenant", events.ErrMissing},
		{"bad tenant", with("tenant", "ac:me"), "tenant", events.ErrInvalid},
		{"missing to without default", with("type", "custom.thing", "to", "<delete>"), "to", events.ErrMissing},
		{"bad audience kind", with("to", "group:1"), "to", events.ErrInvalid},
		{"bad user id", with("to", "user:a b"), "to", events.ErrInvalid},
		{"empty users", with("to", "users:"), "to", events.ErrInvalid},
		{"bad id in users", with("to", "users:a,,b"), "to", events.ErrInvalid},
		{"too many users", with("to", "users:"+strings.Repeat("u,", 1000)+"u"), "to", events.ErrTooLarge},
		{"bad topic", with("to", "topic:"), "to", events.ErrInvalid},
		{"missing data", with("data", "<delete>"), "data", events.ErrMissing},
		{"array data", with("data", `[1,2]`), "data", events.ErrInvalid},
		{"string data", with("data", `"x"`), "data", events.ErrInvalid},
		{"broken json", with("data", `{"a":`), "data", events.ErrInvalid},
		{"invalid utf-8 in data", with("data", "{\"a\":\"\xff\x88\"}"), "data", events.ErrInvalid},
		{"oversize data", with("data", big), "data", events.ErrTooLarge},
		{"empty idempotency key", with("id", ""), "id", events.ErrInvalid},
		{"idempotency key with space", with("id", "a b"), "id", events.ErrInvalid},
		{"long idempotency key", with("id", strings.Repeat("k", 129)), "id", events.ErrInvalid},
		{"bad device", with("device", "ph/one"), "device", events.ErrInvalid},
		{"device on tenant", with("to", "tenant", "device", "phone"), "device", events.ErrInvalid},
		{"ttl zero", with("ttl", "0"), "ttl", events.ErrInvalid},
		{"ttl text", with("ttl", "1m"), "ttl", events.ErrInvalid},
		{"ttl too long", with("ttl", "99999999"), "ttl", events.ErrInvalid},
		{"ttl overflows a duration", with("ttl", "18446744073"), "ttl", events.ErrInvalid}, // n*time.Second wraps negative
		{"ts negative", with("ts", "-1"), "ts", events.ErrInvalid},
		{"unknown field", with("priority", "high"), "priority", events.ErrUnknown},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := events.Parse(c.fields)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := events.FieldOf(err); got != c.field {
				t.Errorf("field %q, want %q (err: %v)", got, c.field, err)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("err %v is not %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("message %q does not name the field", err)
			}
		})
	}
}

func TestDefaultAudience(t *testing.T) {
	e, err := events.Parse(with("to", "<delete>"))
	if err != nil {
		t.Fatal(err)
	}
	if e.To.String() != "user:42" {
		t.Fatalf("default audience %q, want user:42", e.To)
	}
	// An explicit "to" wins over the event's default.
	e, err = events.Parse(with("to", "topic:deals"))
	if err != nil || e.To.String() != "topic:deals" {
		t.Fatalf("got %v, %v", e.To, err)
	}
	// A promotion has no default audience.
	_, err = events.Parse(with("type", "marketing.promotion", "to", "<delete>", "data", `{"title":"x"}`))
	if events.FieldOf(err) != "to" {
		t.Fatalf("promotion without to: %v", err)
	}
}

func TestUsersDeduplicated(t *testing.T) {
	a, err := events.ParseAudience("users:a,b,a,c")
	if err != nil {
		t.Fatal(err)
	}
	if got := a.String(); got != "users:a,b,c" {
		t.Fatalf("got %q", got)
	}
}

func TestValuesRoundTrip(t *testing.T) {
	in, err := events.Parse(with("id", "k", "device", "d1", "ttl", "5", "ts", "7", "x-a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	vals := in.Values()
	m := map[string]string{}
	for i := 0; i < len(vals); i += 2 {
		m[vals[i].(string)] = vals[i+1].(string)
	}
	out, err := events.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	if out.To.String() != in.To.String() || string(out.Data) != string(in.Data) || out.ID != in.ID ||
		out.Device != in.Device || out.TTL != in.TTL || out.TS != in.TS || out.Ext["x-a"] != "b" {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
}

func TestParseValuesNonString(t *testing.T) {
	_, err := events.ParseValues(map[string]any{"type": 3})
	if events.FieldOf(err) != "type" {
		t.Fatalf("got %v", err)
	}
}

func TestDecodeTyped(t *testing.T) {
	e, err := events.Parse(valid())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode(e)
	if err != nil {
		t.Fatal(err)
	}
	op, ok := ev.(*events.OrderPlacedEvent)
	if !ok || op.OrderID != "o-1" {
		t.Fatalf("decoded %#v", ev)
	}
	e.Type = "custom.thing"
	if _, err := events.Decode(e); !errors.Is(err, events.ErrUnknown) {
		t.Fatalf("unknown type: %v", err)
	}
}
