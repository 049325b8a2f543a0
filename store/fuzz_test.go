package store

import (
	"bytes"
	"testing"
	"time"
)

// The seed corpus lives in testdata/fuzz/<FuzzName>/; the f.Add seeds below
// cover the encoder's own output.

func FuzzDecodeAck(f *testing.F) {
	f.Add(encodeAck(storedAck{Epoch: "e1", Seq: 42, UpdatedAt: time.Unix(1732550000, 5), Dirty: true}))
	f.Add(encodeAck(storedAck{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeAck(b)
		if err != nil {
			return
		}
		again, err := decodeAck(encodeAck(v))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again.Epoch != v.Epoch || again.Seq != v.Seq || again.Dirty != v.Dirty || !again.UpdatedAt.Equal(v.UpdatedAt) {
			t.Fatalf("round trip changed %+v into %+v", v, again)
		}
	})
}

func FuzzDecodeSession(f *testing.F) {
	b, _ := encodeSession(Session{ID: "s1", Tenant: "t", User: "u", Device: "d",
		ConnectedAt: time.Unix(1732550000, 0).UTC(), CloseCode: 4008, CloseReason: "slow"})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSession(b)
		if err != nil {
			return
		}
		enc, err := encodeSession(s)
		if err != nil {
			return // e.g. a decoded time outside JSON's year range
		}
		again, err := decodeSession(enc)
		if err != nil {
			t.Fatalf("re-decode %q: %v", enc, err)
		}
		if again.ID != s.ID || again.CloseReason != s.CloseReason || !again.ConnectedAt.Equal(s.ConnectedAt) {
			t.Fatalf("round trip changed %+v into %+v", s, again)
		}
	})
}

func FuzzParsePositionKey(f *testing.F) {
	f.Add(positionKey(prefixAck, "t1", "u1", "d1", "topic:news"))
	f.Add(positionKey(prefixAck, "a/b", "", "c:d", ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parsePositionKey(prefixAck, b)
		if err != nil {
			return
		}
		// Keys parse only from their one canonical encoding.
		if k := positionKey(prefixAck, id.Tenant, id.User, id.Device, id.Feed); !bytes.Equal(k, b) {
			t.Fatalf("parse(%q) = %+v, which encodes to %q", b, id, k)
		}
	})
}
