package store

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestPositionKeysDoNotCollide(t *testing.T) {
	// Tuples that collide under naive "/" or ":" joining.
	ids := []posID{
		{"a", "b", "c", "d"}, {"a/b", "c", "d", ""}, {"a", "b/c", "d", "x"}, {"a", "b", "c/d", "x"},
		{"a", "b", "c", "d:e"}, {"a", "b", "c:d", "e"}, {"a", "b", "cd", "e"}, {"a", "b", "c", "de"},
	}
	seen := map[string]posID{}
	for _, id := range ids {
		k := positionKey(prefixAck, id.Tenant, id.User, id.Device, id.Feed)
		if prev, ok := seen[string(k)]; ok {
			t.Fatalf("%+v and %+v share key %q", prev, id, k)
		}
		seen[string(k)] = id
		got, err := parsePositionKey(prefixAck, k)
		if err != nil || got != id {
			t.Errorf("parse(%q) = %+v, %v, want %+v", k, got, err, id)
		}
		// Only this device's keys fall inside its scan range.
		for _, other := range ids {
			ok := other.Tenant == id.Tenant && other.User == id.User && other.Device == id.Device
			p := devicePrefix(prefixAck, id.Tenant, id.User, id.Device)
			ok2 := bytes.HasPrefix(positionKey(prefixAck, other.Tenant, other.User, other.Device, other.Feed), p)
			if ok != ok2 {
				t.Errorf("device prefix of %+v matches %+v: %v, want %v", id, other, ok2, ok)
			}
		}
	}
	if _, err := parsePositionKey(prefixDirty, positionKey(prefixAck, "a", "b", "c", "d")); err == nil {
		t.Error("parsing an ack key in the dirty namespace succeeded")
	}
}

func TestPrefixEnd(t *testing.T) {
	tests := []struct{ in, want []byte }{
		{[]byte("a/"), []byte("a0")},
		{[]byte{'a', 0xff}, []byte{'b'}},
		{[]byte{0xff, 0xff}, nil},
	}
	for _, tt := range tests {
		if got := prefixEnd(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("prefixEnd(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClosedKeysSortByTime(t *testing.T) {
	times := []time.Time{
		time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(-1, 0),
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	var keys [][]byte
	for _, at := range times {
		keys = append(keys, closedKey(at, "id"))
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		t.Errorf("closed keys are not in time order")
	}
}
