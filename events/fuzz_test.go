package events_test

import (
	"testing"

	"github.com/heraldrt/herald/events"
)

// FuzzParse feeds arbitrary field values to Parse: it must never panic, and
// whatever it accepts must survive a Values/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	f.Add("order.placed", "acme", "user:42", `{"a":1}`, "k1", "", "60", "1")
	f.Add("chat.message", "t-1", "users:a,b,a", `{}`, "", "phone", "", "")
	f.Add("x", "t", "tenant", ` {"nested":{"x":[1,2]}}`, "", "", "", "")
	f.Add("x", "t", "topic:news", `{`, "", "", "-5", "abc")
	f.Fuzz(func(t *testing.T, typ, tenant, to, data, id, device, ttl, ts string) {
		fields := map[string]string{"type": typ, "tenant": tenant, "to": to, "data": data}
		for k, v := range map[string]string{"id": id, "device": device, "ttl": ttl, "ts": ts} {
			if v != "" {
				fields[k] = v
			}
		}
		e, err := events.Parse(fields)
		if err != nil {
			if events.FieldOf(err) == "" {
				t.Fatalf("error names no field: %v", err)
			}
			return
		}
		vals := e.Values()
		m := make(map[string]string, len(vals)/2)
		for i := 0; i < len(vals); i += 2 {
			m[vals[i].(string)] = vals[i+1].(string)
		}
		back, err := events.Parse(m)
		if err != nil {
			t.Fatalf("re-parse of accepted entry failed: %v", err)
		}
		if back.To.String() != e.To.String() || string(back.Data) != string(e.Data) || back.TTL != e.TTL {
			t.Fatalf("round trip changed the entry: %+v vs %+v", back, e)
		}
	})
}

// FuzzParseAudience: no panics, and an accepted audience prints back to
// something that parses to the same audience.
func FuzzParseAudience(f *testing.F) {
	for _, s := range []string{"user:1", "users:a,b", "tenant", "topic:x", "users:", "user:", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := events.ParseAudience(s)
		if err != nil {
			return
		}
		b, err := events.ParseAudience(a.String())
		if err != nil || b.String() != a.String() {
			t.Fatalf("%q -> %q -> %v", s, a.String(), err)
		}
	})
}
