package proto2_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"runtime"
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

// hostileHeaders are frames of a few bytes whose headers claim far more
// than they hold.
var hostileHeaders = []struct {
	name  string
	frame []byte
}{
	{"bin32 data of 4 GiB", []byte{0x81, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0xff, 0xff, 0xff, 0xff}},
	{"str32 data of 4 GiB", []byte{0x81, 0xa4, 'd', 'a', 't', 'a', 0xdb, 0xff, 0xff, 0xff, 0xff}},
	{"map32 feeds of 4 G entries", []byte{0x81, 0xa5, 'f', 'e', 'e', 'd', 's', 0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"array32 of 4 G entries", []byte{0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff}},
	{"map32 frame of 4 G entries", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}},
	{"ext32 of 4 GiB", []byte{0x81, 0xa1, 'x', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{"bin16 past the end", []byte{0x81, 0xa4, 'd', 'a', 't', 'a', 0xc5, 0x01, 0x00, '{', '}'}},
	{"maps nested 100 deep", append(bytes.Repeat([]byte{0x81, 0xa1, 'x'}, 100), 0xc0)},
	{"the never-used byte", []byte{0x81, 0xa1, 't', 0xc1}},
}

// Frames whose length or count headers claim more than the frame holds,
// or that nest too deeply, are refused as bad frames by every decoder,
// before the decoder allocates what they claim.
func TestHostileHeadersAreRefusedCheaply(t *testing.T) {
	decoders := map[string]func([]byte) error{
		"client": func(b []byte) error { _, err := proto2.ParseClientFrame(b, 0); return err },
		"server": func(b []byte) error { _, err := proto2.ParseServerFrame(b); return err },
		"json":   func(b []byte) error { _, err := proto2.ToJSON(b); return err },
	}
	for _, h := range hostileHeaders {
		for name, dec := range decoders {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := dec(h.frame)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, events.ErrBadFrame) {
				t.Errorf("%s, %s decoder: %v, want a bad frame", h.name, name, err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
				t.Errorf("%s, %s decoder: allocated %d bytes", h.name, name, n)
			}
		}
	}
}

// The shape check lets through what the encoders write, at every length
// boundary of strings, bins, maps and arrays.
func TestShapeCheckPassesEveryBoundary(t *testing.T) {
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		data, _ := json.Marshal(strings.Repeat("a", max(0, n-2)))
		b := proto2.AppendNotification(nil, strings.Repeat("f", min(n, 200)), "user", uint64(n), "t", 1, data)
		if _, err := proto2.ParseServerFrame(b); err != nil {
			t.Fatalf("data of %d bytes: %v", len(data), err)
		}
		v := map[string]any{"a": make([]int, n%20000), "m": map[string]int{"k": n}, "f": 1.5, "i": -n, "big": uint64(1) << 40}
		mb, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := proto2.ToJSON(mb); err != nil {
			t.Fatalf("array of %d: %v", n%20000, err)
		}
	}
}

// A resume position with a negative seq is refused, in every integer
// encoding, as protocol 1 refuses "seq":-1 (the decoder alone would wrap it
// to 2^64-1 and resume past the whole feed). Signed encodings of positive
// numbers pass, and server frames keep their negative timestamps.
func TestNegativePositionIsRefused(t *testing.T) {
	resume := func(seq ...byte) []byte {
		b := []byte{0x82, 0xa1, 't', 0xa6, 'r', 'e', 's', 'u', 'm', 'e', 0xa5, 'f', 'e', 'e', 'd', 's',
			0x81, 0xa4, 'u', 's', 'e', 'r', 0x82, 0xa5, 'e', 'p', 'o', 'c', 'h', 0xa1, 'e', 0xa3, 's', 'e', 'q'}
		return append(b, seq...)
	}
	for name, seq := range map[string][]byte{
		"negative fixint": {0xff},
		"int8":            {0xd0, 0x80},
		"int16":           {0xd1, 0xff, 0xff},
		"int32":           {0xd2, 0x80, 0, 0, 0},
		"int64":           {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if f, err := proto2.ParseClientFrame(resume(seq...), 0); !errors.Is(err, events.ErrBadFrame) {
			t.Errorf("seq as a negative %s: %+v, %v; want a bad frame", name, f, err)
		}
	}
	f, err := proto2.ParseClientFrame(resume(0xd3, 0, 0, 0, 0, 0, 0, 0, 7), 0)
	if err != nil || f.Feeds["user"].Seq != 7 {
		t.Errorf("seq 7 as an int64: %+v, %v", f, err)
	}
	n, err := proto2.ParseServerFrame(proto2.AppendNotification(nil, "i", "user", 1, "t", -5, []byte(`{}`)))
	if err != nil || n.TS != -5 {
		t.Errorf("server frame with ts -5: %+v, %v", n, err)
	}
}
