package producer

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// encode writes the fields itself (data uncopied) instead of calling
// events.Envelope.Values: it must write exactly what Values writes.
func TestEncodeMatchesValues(t *testing.T) {
	if n := reflect.TypeFor[events.Envelope]().NumField(); n != 9 {
		t.Fatalf("events.Envelope has %d fields, encode knows 9: teach encode the new one", n)
	}
	envs := []events.Envelope{
		{Type: "a.b", Tenant: "acme", To: events.ToUser("42"), Data: json.RawMessage(`{}`)},
		{Type: "order.placed", Tenant: "t-1", To: events.ToUsers("1", "2"), Data: json.RawMessage(`{"x":[1]}`),
			ID: "k-1", Device: "phone", TTL: 1500 * time.Millisecond, TS: 1732550000000,
			Ext: map[string]string{"x-a": "1", "x-b": "2"}},
		{Type: "c", Tenant: "t", To: events.ToTopic("news"), Data: json.RawMessage(`{}`), TTL: time.Hour, TS: 5},
	}
	for _, env := range envs {
		s := &sendState{now: time.UnixMilli(1732550000000), nowTS: "1732550000000", retention: []any{"maxlen", "~", int64(5)}}
		args := s.encode(env, "s")
		if !slices.Equal(args[:6], []any{"xadd", "s", "maxlen", "~", int64(5), "*"}) {
			t.Fatalf("command head %v", args[:6])
		}
		got := pairs(args[6:])
		want := pairs(env.Values())
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("encode wrote %v\nValues writes %v", got, want)
		}
	}
}

// pairs renders name/value pairs in order, extensions (a map in Envelope,
// in any order) sorted at the end.
func pairs(vals []any) []string {
	var fixed, ext []string
	for i := 0; i+1 < len(vals); i += 2 {
		p := fmt.Sprintf("%s=%s", vals[i], vals[i+1])
		if s := vals[i].(string); len(s) > 2 && s[:2] == events.ExtensionPrefix {
			ext = append(ext, p)
			continue
		}
		fixed = append(fixed, p)
	}
	slices.Sort(ext)
	return append(fixed, ext...)
}

func TestPartitionMatchesKeys(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never used
	defer rdb.Close()
	for _, n := range []int{0, 1, 2, 8, 13} {
		p := New(rdb, WithPrefix("x:"), WithPartitions(n))
		for _, tenant := range []string{"acme", "globex", "initech", "t1", "a"} {
			if got, want := p.streams[p.partition(tenant)], (keys.Space{Prefix: "x:"}).IngestStream(tenant, n); got != want {
				t.Errorf("partitions %d, tenant %s: stream %s, keys says %s", n, tenant, got, want)
			}
		}
	}
}
