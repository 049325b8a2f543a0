package feed_test

import (
	"bytes"
	"testing"

	"github.com/heraldrt/herald/internal/feed"
)

func TestPayloadRoundTrip(t *testing.T) {
	in := feed.Entry{Epoch: "abc", Seq: 42, Type: "order.placed", TS: 17, Exp: 99, Device: "d", Data: []byte("{\"x\":\"a\\nb\"}\n")}
	out, err := feed.DecodePayload(in.AppendPayload(nil))
	if err != nil {
		t.Fatal(err)
	}
	if out.Epoch != in.Epoch || out.Seq != in.Seq || out.Type != in.Type || out.TS != in.TS ||
		out.Exp != in.Exp || out.Device != in.Device || !bytes.Equal(out.Data, in.Data) {
		t.Fatalf("%+v != %+v", out, in)
	}
}

func TestNotificationID(t *testing.T) {
	id := feed.NotificationID("ep0", 9, "topic:a-b")
	ep, seq, f, err := feed.ParseNotificationID(id)
	if err != nil || ep != "ep0" || seq != 9 || f != "topic:a-b" {
		t.Fatalf("%q -> %q %d %q %v", id, ep, seq, f, err)
	}
	if string(feed.AppendNotificationID(nil, "ep0", 9, "topic:a-b")) != id {
		t.Fatal("AppendNotificationID differs from NotificationID")
	}
	for _, bad := range []string{"", "x", "a-b", "a-0-user", "a-x-user", "-1-user", "a-1-"} {
		if _, _, _, err := feed.ParseNotificationID(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte("ep\n1\nt\n0\n\n\n{}"))
	f.Add([]byte("ep\n1\nt\n0\n5\nd\n{\"a\":1}"))
	f.Add([]byte("\n\n\n\n\n\n"))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := feed.DecodePayload(p)
		if err != nil {
			return
		}
		back, err := feed.DecodePayload(e.AppendPayload(nil))
		if err != nil || back.Seq != e.Seq || back.Epoch != e.Epoch || !bytes.Equal(back.Data, e.Data) {
			t.Fatalf("round trip of %q: %+v %v", p, back, err)
		}
	})
}

func FuzzParseNotificationID(f *testing.F) {
	f.Add("ep-1-user")
	f.Add("ep-12-topic:x-y")
	f.Fuzz(func(t *testing.T, id string) {
		ep, seq, fd, err := feed.ParseNotificationID(id)
		if err != nil {
			return
		}
		if feed.NotificationID(ep, seq, fd) != id {
			// Leading zeros or a '+' in the number are accepted but not canonical.
			if _, _, _, err := feed.ParseNotificationID(feed.NotificationID(ep, seq, fd)); err != nil {
				t.Fatalf("canonical form of %q does not parse: %v", id, err)
			}
		}
	})
}
