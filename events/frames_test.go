package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/heraldrt/herald/events"
)

func TestParseClientFrame(t *testing.T) {
	good := []string{
		`{"t":"ping"}`,
		`{"t":"ack","id":"ep-1-user"}`,
		`{"t":"resume","feeds":{"user":{"epoch":"e","seq":41}}}`,
		`{"t":"sub","topic":"news"}`,
		`{"t":"unsub","topic":"news"}`,
		`{"t":"refresh","token":"a.b.c"}`,
		`{"t":"pub","type":"chat.message","data":{"text":"hi"}}`,
	}
	for _, s := range good {
		if _, err := events.ParseClientFrame([]byte(s), 0); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{
		``, `not json`, `[]`, `{}`, `{"t":"nope"}`, `{"t":"ping","extra":1}`, `{"t":"ping"} {"t":"ping"}`,
		`{"t":"ack"}`, `{"t":"resume","feeds":{}}`, `{"t":"resume","feeds":{"user":{"seq":1}}}`,
		`{"t":"sub","topic":"a b"}`, `{"t":"refresh"}`, `{"t":"pub","type":"X","data":{}}`,
		`{"t":"pub","type":"chat.message","data":[1]}`, `{"t":"pub","type":"chat.message"}`,
		"{\"t\":\"pub\",\"type\":\"chat.message\",\"data\":{\"a\":\"\xff\"}}", // invalid UTF-8
	}
	for _, s := range bad {
		if _, err := events.ParseClientFrame([]byte(s), 0); !errors.Is(err, events.ErrBadFrame) {
			t.Errorf("%q: got %v, want ErrBadFrame", s, err)
		}
	}
}

// The fast path and the full parse agree on every frame the fast path takes.
func TestFastFramesMatchFullParse(t *testing.T) {
	for _, s := range []string{`{"t":"ping"}`, `{"t":"ack","id":"ep-1-user"}`, `{"t":"ack","id":"ep-12-topic:a.b"}`} {
		fast, err := events.ParseClientFrame([]byte(s), 0)
		if err != nil {
			t.Fatal(err)
		}
		var full events.ClientFrame
		if err := json.Unmarshal([]byte(s), &full); err != nil || full.T != fast.T || full.ID != fast.ID {
			t.Fatalf("%s: fast %+v, full %+v", s, fast, full)
		}
	}
	// Escapes and oddities fall through to the strict parse.
	for _, s := range []string{`{"t":"ack","id":""}`, `{"t":"ack","id":"a\"b"}`, `{"t":"ack","id":"x"}x"}`} {
		f, err := events.ParseClientFrame([]byte(s), 0)
		if err == nil && f.T == "ack" && f.ID == "" {
			t.Fatalf("%s accepted with an empty id", s)
		}
	}
}

func TestAppendNotificationIsJSON(t *testing.T) {
	b := events.AppendNotification(nil, "e-1-topic:\"x\"", "topic:\"x\"", 7, "order.placed", 99, []byte(`{"a":[1,2]}`))
	var n events.Notification
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if n.T != "n" || n.Seq != 7 || n.Feed != `topic:"x"` || n.TS != 99 || string(n.Data) != `{"a":[1,2]}` {
		t.Fatalf("decoded %+v", n)
	}
}

func FuzzParseClientFrame(f *testing.F) {
	for _, s := range []string{`{"t":"ping"}`, `{"t":"ack","id":"x"}`, `{"t":"resume","feeds":{"user":{"epoch":"e","seq":1}}}`,
		`{"t":"pub","type":"a","data":{}}`, `{"t":"sub","topic":"x"}`, `{"t":"refresh","token":"t"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := events.ParseClientFrame(b, 1024)
		if err != nil {
			if !errors.Is(err, events.ErrBadFrame) {
				t.Fatalf("error does not wrap ErrBadFrame: %v", err)
			}
			return
		}
		// An accepted frame re-encodes to a frame that is accepted again.
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.ParseClientFrame(again, 1024); err != nil {
			t.Fatalf("%s accepted, its re-encoding %s refused: %v", b, again, err)
		}
	})
}

func TestParseNotificationMatchesDecoder(t *testing.T) {
	frames := [][]byte{
		events.AppendNotification(nil, "e1-7-user", "user", 7, "order.placed", 1732550000000, []byte(`{"a":[1,2],"b":"\u00e9"}`)),
		events.AppendNotification(nil, "e1-0-topic:x", "topic:x", 0, "t", -5, []byte(`{}`)),
		events.AppendNotification(nil, `e-1-topic:"x"`, `topic:"x"`, 1, "t", 0, []byte(`{"q":"\""}`)), // escapes: decoder path
		[]byte(`{"t":"n", "id":"a","feed":"user","seq":1,"type":"t","ts":1,"data":{}}`),               // spacing: decoder path
		[]byte(`{"t":"welcome","session":"s","user":"u","tenant":"t","device":"d","heartbeat":25}`),
		[]byte(`{"t":"reset","feed":"user","reason":"trimmed"}`),
	}
	for _, b := range frames {
		got, err := events.ParseNotification(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		var want events.Notification
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if !sameNotification(got, want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", b, got, want)
		}
	}
	for _, bad := range []string{``, `{`, `{"t":"n","id":"a","feed":"user","seq":01,"type":"t","ts":1,"data":{}}`,
		`{"t":"n","id":"a","feed":"user","seq":1,"type":"t","ts":1,"data":{]}`} {
		if _, err := events.ParseNotification([]byte(bad)); !errors.Is(err, events.ErrBadFrame) {
			t.Fatalf("%q: want ErrBadFrame, got %v", bad, err)
		}
	}
}

func TestParseNotificationCopiesData(t *testing.T) {
	b := events.AppendNotification(nil, "e-1-user", "user", 1, "t", 1, []byte(`{"k":1}`))
	n, err := events.ParseNotification(b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if string(n.Data) != `{"k":1}` {
		t.Fatalf("data aliases the frame: %q", n.Data)
	}
}

func sameNotification(a, b events.Notification) bool {
	return a.T == b.T && a.ID == b.ID && a.Feed == b.Feed && a.Seq == b.Seq && a.Type == b.Type &&
		a.TS == b.TS && string(a.Data) == string(b.Data)
}

// FuzzParseNotification: the fast path and the JSON decoder agree on every
// input the fast path accepts, and ParseNotification fails exactly when the
// decoder does.
func FuzzParseNotification(f *testing.F) {
	f.Add(events.AppendNotification(nil, "e1-7-user", "user", 7, "order.placed", 1732550000000, []byte(`{"a":1}`)))
	f.Add(events.AppendNotification(nil, "e-1-t", "tenant", 18446744073709551615, "x", -9223372036854775808, []byte(`{}`)))
	f.Add([]byte(`{"t":"welcome","session":"s","heartbeat":25}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := events.ParseNotification(b)
		var want events.Notification
		werr := json.Unmarshal(b, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: ParseNotification err %v, decoder err %v", b, err, werr)
		}
		if err == nil && !sameNotification(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", b, got, want)
		}
	})
}
