package proto2_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
	"github.com/vmihailenco/msgpack/v5"
)

// sameJSON fails unless a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("frames differ:\n%s\n%s", a, b)
	}
}

const eventJSON = `{"order_id":"o-1","items":[{"sku":"a","qty":2}],"note":"é \"x\""}`

// Every server frame says in protocol 2 what it says in protocol 1.
func TestServerFramesMatchProtocol1(t *testing.T) {
	long := strings.Repeat("x", 70000)
	cases := []struct {
		name   string
		v1, v2 []byte
	}{
		{"notification", events.AppendNotification(nil, "e1-42-user", "user", 42, "order.placed", 1764756942000, []byte(eventJSON)),
			proto2.AppendNotification(nil, "e1-42-user", "user", 42, "order.placed", 1764756942000, []byte(eventJSON))},
		{"notification, negative ts and large seq", events.AppendNotification(nil, "e-1", "topic:news", 1<<40, "x", -5000, []byte(`{}`)),
			proto2.AppendNotification(nil, "e-1", "topic:news", 1<<40, "x", -5000, []byte(`{}`))},
		{"notification, long strings and data", events.AppendNotification(nil, long[:300], long[:40], 300, "t", 1, []byte(`{"a":"`+long+`"}`)),
			proto2.AppendNotification(nil, long[:300], long[:40], 300, "t", 1, []byte(`{"a":"`+long+`"}`))},
		{"welcome", mustJSON(t, events.Welcome{T: "welcome", Session: "s-1", User: "u", Tenant: "acme", Device: "d", Heartbeat: 25}),
			proto2.AppendWelcome(nil, events.Welcome{T: "welcome", Session: "s-1", User: "u", Tenant: "acme", Device: "d", Heartbeat: 25})},
		{"reset", mustJSON(t, events.Reset{T: "reset", Feed: "user", Reason: "epoch changed"}),
			proto2.AppendReset(nil, events.Reset{T: "reset", Feed: "user", Reason: "epoch changed"})},
		{"unread", mustJSON(t, events.UnreadFrame{T: "unread", Count: 70000}), proto2.AppendUnread(nil, events.UnreadFrame{T: "unread", Count: 70000})},
		{"error", mustJSON(t, events.ErrorFrame{T: "error", Code: "bad_ack", Msg: strings.Repeat("m", 200)}),
			proto2.AppendError(nil, events.ErrorFrame{T: "error", Code: "bad_ack", Msg: strings.Repeat("m", 200)})},
		{"pong", events.PongFrame, proto2.Pong},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j, err := proto2.ToJSON(c.v2)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, c.v1, j)
			// The library reads what the hand-written encoder wrote.
			var m map[string]any
			if err := msgpack.Unmarshal(c.v2, &m); err != nil {
				t.Fatalf("msgpack library: %v", err)
			}
			n2, err := proto2.ParseServerFrame(c.v2)
			if err != nil {
				t.Fatal(err)
			}
			n1, err := events.ParseNotification(c.v1)
			if err != nil {
				t.Fatal(err)
			}
			if n1.T != n2.T || n1.ID != n2.ID || n1.Seq != n2.Seq || n1.TS != n2.TS || n1.Feed != n2.Feed || !bytes.Equal(n1.Data, n2.Data) {
				t.Fatalf("parsed differently: %+v vs %+v", n1, n2)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A notification's data is a bin holding the producer's bytes unchanged.
func TestNotificationDataIsBin(t *testing.T) {
	b := proto2.AppendNotification(nil, "e-1-user", "user", 1, "x", 2, []byte(eventJSON))
	var m map[string]any
	if err := msgpack.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	d, ok := m["data"].([]byte)
	if !ok || string(d) != eventJSON {
		t.Fatalf("data is %T %q, want the bin %q", m["data"], m["data"], eventJSON)
	}
}

func TestClientFramesRoundTrip(t *testing.T) {
	frames := []events.ClientFrame{
		{T: "ping"},
		{T: "ack", ID: "e1-42-user"},
		{T: "ack", ID: strings.Repeat("i", 300)},
		{T: "resume", Feeds: map[string]events.Position{"user": {Epoch: "e1", Seq: 41}, "tenant": {Epoch: "e2", Seq: 1 << 33}}},
		{T: "sub", Topic: "news"},
		{T: "unsub", Topic: "news"},
		{T: "refresh", Token: "a.b.c"},
		{T: "pub", Type: "chat.message", Data: json.RawMessage(`{"text":"hi"}`)},
	}
	for _, f := range frames {
		t.Run(f.T, func(t *testing.T) {
			b := proto2.AppendClientFrame(nil, f)
			got, err := proto2.ParseClientFrame(b, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("got %+v, want %+v", got, f)
			}
			j, err := proto2.ToJSON(b)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, mustJSON(t, f), j)
		})
	}
}

// Frames protocol 2 refuses, each with an error that wraps ErrBadFrame
// (the edge closes the session with 1008, as for protocol 1's bad JSON).
func TestBadClientFrames(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"empty":                {},
		"JSON text":            []byte(`{"t":"ping"}`),
		"an array":             enc([]string{"ping"}),
		"nil":                  {0xc0},
		"a string":             enc("ping"),
		"no t":                 enc(map[string]any{"id": "x"}),
		"unknown kind":         enc(map[string]any{"t": "nope"}),
		"unknown field":        enc(map[string]any{"t": "ping", "x": 1}),
		"ack without id":       enc(map[string]any{"t": "ack"}),
		"id not a string":      enc(map[string]any{"t": "ack", "id": 5}),
		"trailing data":        append(proto2.AppendAck(nil, "e-1-user"), 0x01),
		"truncated":            proto2.AppendAck(nil, "e-1-user")[:12],
		"pub data not JSON":    proto2.AppendClientFrame(nil, events.ClientFrame{T: "pub", Type: "x", Data: []byte("nope")}),
		"pub data an array":    proto2.AppendClientFrame(nil, events.ClientFrame{T: "pub", Type: "x", Data: []byte("[1]")}),
		"pub data a map":       enc(map[string]any{"t": "pub", "type": "x", "data": map[string]any{"a": 1}}),
		"pub data too large":   proto2.AppendClientFrame(nil, events.ClientFrame{T: "pub", Type: "x", Data: []byte(`{"a":"` + strings.Repeat("x", events.DefaultMaxData) + `"}`)}),
		"huge declared length": {0x81, 0xa1, 't', 0xdb, 0xff, 0xff, 0xff, 0xff, 'p'},
		"resume without epoch": enc(map[string]any{"t": "resume", "feeds": map[string]any{"user": map[string]any{"seq": 1}}}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := proto2.ParseClientFrame(b, 0)
			if err == nil {
				t.Fatalf("accepted %x as %+v", b, f)
			}
			if !errors.Is(err, events.ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
		})
	}
}

// The fast path reads ping and ack as the full parse does.
func TestFastPathAgrees(t *testing.T) {
	for _, b := range [][]byte{proto2.Ping, proto2.AppendAck(nil, "e1-1-user"), proto2.AppendAck(nil, strings.Repeat("a", 200)), proto2.AppendAck(nil, strings.Repeat("a", 513))} {
		fast, errFast := proto2.ParseClientFrame(b, 0)
		var slow events.ClientFrame
		dec := msgpack.NewDecoder(bytes.NewReader(b))
		dec.SetCustomStructTag("json")
		dec.DisallowUnknownFields(true)
		errSlow := dec.Decode(&slow)
		if errSlow == nil {
			errSlow = slow.Check(0)
		}
		if (errFast == nil) != (errSlow == nil) || (errFast == nil && !reflect.DeepEqual(fast, slow)) {
			t.Fatalf("%x: fast %+v %v, full %+v %v", b, fast, errFast, slow, errSlow)
		}
	}
}
