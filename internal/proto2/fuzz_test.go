package proto2_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/proto2"
)

// FuzzParseClientFrame: arbitrary bytes never panic the decoder; a frame
// it accepts passes the contract's checks, writes back and reads back the
// same, and converts to protocol 1 JSON that protocol 1 parses the same.
func FuzzParseClientFrame(f *testing.F) {
	for _, s := range []events.ClientFrame{
		{T: "ping"}, {T: "ack", ID: "e1-42-user"},
		{T: "resume", Feeds: map[string]events.Position{"user": {Epoch: "e", Seq: 3}}},
		{T: "sub", Topic: "news"}, {T: "refresh", Token: "t.o.k"},
		{T: "pub", Type: "chat.message", Data: json.RawMessage(`{"a":[1,2]}`)},
	} {
		f.Add(proto2.AppendClientFrame(nil, s))
	}
	f.Add([]byte{0x81, 0xa1, 't', 0xdb, 0xff, 0xff, 0xff, 0xff})
	for _, h := range hostileHeaders {
		f.Add(h.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := proto2.ParseClientFrame(b, 0)
		if err != nil {
			return
		}
		if err := fr.Check(0); err != nil {
			t.Fatalf("accepted a frame that fails the checks: %+v: %v", fr, err)
		}
		back, err := proto2.ParseClientFrame(proto2.AppendClientFrame(nil, fr), 0)
		if err != nil || !reflect.DeepEqual(back, fr) {
			t.Fatalf("round trip: %+v -> %+v, %v", fr, back, err)
		}
		j, err := proto2.ToJSON(b)
		if err != nil {
			t.Fatalf("accepted frame does not convert to JSON: %v", err)
		}
		if _, err := events.ParseClientFrame(j, 0); err != nil && fr.T != events.FramePub {
			// a pub's data may be JSON that protocol 1 reads differently
			// (duplicate keys in nested objects); everything else must agree
			t.Fatalf("protocol 1 refuses %s: %v", j, err)
		}
	})
}

// FuzzParseServerFrame: a server frame decoder never panics, and what the
// encoder writes reads back the same.
func FuzzParseServerFrame(f *testing.F) {
	f.Add("e1-42-user", "user", uint64(42), "order.placed", int64(1764756942000), []byte(`{"a":1}`))
	f.Add("", "", uint64(0), "", int64(-1), []byte(`{}`))
	f.Add("x", "topic:news", uint64(1<<63), "t", int64(-1<<63), bytes.Repeat([]byte("a"), 300))
	f.Fuzz(func(t *testing.T, id, feed string, seq uint64, typ string, ts int64, data []byte) {
		b := proto2.AppendNotification(nil, id, feed, seq, typ, ts, data)
		n, err := proto2.ParseServerFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		if n.T != "n" || n.ID != id || n.Feed != feed || n.Seq != seq || n.Type != typ || n.TS != ts || !bytes.Equal(n.Data, data) {
			t.Fatalf("read back %+v", n)
		}
		// The same bytes as a frame of unknown shape: no panic.
		proto2.ParseServerFrame(data)
		proto2.ToJSON(data)
	})
}
