package centrifugo_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldrt/herald/internal/loadtest/centrifugo"
)

// Frames as Centrifugo v6.9.1 sent them in this package's tests.
const (
	connectOff     = `{"id":1,"connect":{"client":"77b771f8","version":"6.9.1 OSS","expires":true,"ttl":3600,"subs":{"personal:#u1":{}},"ping":25,"pong":true}}`
	connectOn      = `{"id":1,"connect":{"client":"be77ac5b","version":"6.9.1 OSS","expires":true,"ttl":3600,"subs":{"personal:#u1":{"recoverable":true,"epoch":"OeBbPPQH","positioned":true}},"ping":25,"pong":true}}`
	connectRecover = `{"id":1,"connect":{"client":"7157b007","version":"6.9.1 OSS","expires":true,"ttl":3600,"subs":{"personal:#u1":{"recoverable":true,"epoch":"OmrtARns","publications":[{"data":{"k":"a","n":2},"offset":2},{"data":{"k":"a","n":3},"offset":3}],"recovered":true,"offset":1,"positioned":true,"was_recovering":true}},"ping":1,"pong":true}}`
	twoPushes      = `{"push":{"channel":"personal:#u1","pub":{"data":{"k":"x","n":94},"offset":95}}}` + "\n" + `{"push":{"channel":"personal:#u1","pub":{"data":{"k":"x","n":95},"offset":96}}}`
	pushNoHistory  = `{"push":{"channel":"personal:#u1","pub":{"data":{"k":"x","n":79}}}}`
	refused        = `{"id":1,"error":{"code":109,"message":"token expired"}}`
)

func TestFrameParse(t *testing.T) {
	pub := func(data string, offset uint64, recovered bool) centrifugo.Publication {
		return centrifugo.Publication{Channel: "personal:#u1", Data: []byte(data), Offset: offset, Recovered: recovered}
	}
	for _, tc := range []struct {
		name string
		msg  string
		want centrifugo.Frame
	}{
		{"ping", `{}`, centrifugo.Frame{Pings: 1}},
		{"connect without history", connectOff, centrifugo.Frame{Connect: &centrifugo.ConnectReply{
			ID: 1, Client: "77b771f8", Version: "6.9.1 OSS", Ping: 25, Pong: true, Expires: true, TTL: 3600,
			Subs: map[string]centrifugo.SubState{"personal:#u1": {}},
		}}},
		{"connect with history", connectOn, centrifugo.Frame{Connect: &centrifugo.ConnectReply{
			ID: 1, Client: "be77ac5b", Version: "6.9.1 OSS", Ping: 25, Pong: true, Expires: true, TTL: 3600,
			Subs: map[string]centrifugo.SubState{"personal:#u1": {Recoverable: true, Position: centrifugo.Position{Epoch: "OeBbPPQH"}}},
		}}},
		{"connect that recovered", connectRecover, centrifugo.Frame{
			Connect: &centrifugo.ConnectReply{
				ID: 1, Client: "7157b007", Version: "6.9.1 OSS", Ping: 1, Pong: true, Expires: true, TTL: 3600,
				Subs: map[string]centrifugo.SubState{"personal:#u1": {
					Recoverable: true, Position: centrifugo.Position{Offset: 1, Epoch: "OmrtARns"}, WasRecovering: true, Recovered: true,
				}},
			},
			Publications: []centrifugo.Publication{pub(`{"k":"a","n":2}`, 2, true), pub(`{"k":"a","n":3}`, 3, true)},
		}},
		{"two pushes and a ping", twoPushes + "\n{}", centrifugo.Frame{
			Pings:        1,
			Publications: []centrifugo.Publication{pub(`{"k":"x","n":94}`, 95, false), pub(`{"k":"x","n":95}`, 96, false)},
		}},
		{"push without history", pushNoHistory, centrifugo.Frame{Publications: []centrifugo.Publication{pub(`{"k":"x","n":79}`, 0, false)}}},
		{"refused connect", refused, centrifugo.Frame{Errors: []centrifugo.ReplyError{{ID: 1, Code: 109, Message: "token expired"}}}},
		{"join and a reply to something else", `{"push":{"channel":"c","join":{"info":{"user":"u"}}}}` + "\n" + `{"id":7,"publish":{}}`, centrifugo.Frame{Other: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f centrifugo.Frame
			if err := f.Parse([]byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if len(f.Publications) == 0 {
				f.Publications = nil // reused capacity is not part of the result
			}
			if !reflect.DeepEqual(f, tc.want) {
				t.Errorf("got  %+v\nwant %+v", f, tc.want)
			}
		})
	}
}

// TestFrameParseReuses checks that Parse replaces what the frame held.
func TestFrameParseReuses(t *testing.T) {
	var f centrifugo.Frame
	if err := f.Parse([]byte(twoPushes)); err != nil {
		t.Fatal(err)
	}
	if err := f.Parse([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if f.Pings != 1 || len(f.Publications) != 0 || f.Connect != nil {
		t.Errorf("after a ping: %+v", f)
	}
	if err := f.Parse([]byte("{}\n{\"push\":")); err == nil {
		t.Error("Parse accepted a truncated reply")
	}
}

func TestConnectCommand(t *testing.T) {
	if got, want := string(centrifugo.ConnectCommand(1, "tok", nil)), `{"id":1,"connect":{"token":"tok"}}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got := centrifugo.ConnectCommand(2, "tok", centrifugo.Positions{"personal:#u1": {Offset: 7, Epoch: "e"}})
	want := `{"id":2,"connect":{"token":"tok","subs":{"personal:#u1":{"recover":true,"offset":7,"epoch":"e"}}}}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if !json.Valid(got) {
		t.Error("not JSON")
	}
}

func TestPositionsUpdate(t *testing.T) {
	ch := "personal:#u1"
	p := centrifugo.Positions{}
	steps := []struct {
		msg  string
		want centrifugo.Position
	}{
		{connectOn, centrifugo.Position{Offset: 0, Epoch: "OeBbPPQH"}},
		{twoPushes, centrifugo.Position{Offset: 96, Epoch: "OeBbPPQH"}},
		// A reconnect that recovers restarts from the reply's offset (the
		// one asked from), then the publications carry it to the top.
		{connectRecover, centrifugo.Position{Offset: 3, Epoch: "OmrtARns"}},
	}
	for i, s := range steps {
		var f centrifugo.Frame
		if err := f.Parse([]byte(s.msg)); err != nil {
			t.Fatal(err)
		}
		p.Update(&f)
		if p[ch] != s.want {
			t.Errorf("step %d: %+v, want %+v", i, p[ch], s.want)
		}
	}

	// Within one epoch a reply's lower offset never moves the position back.
	p = centrifugo.Positions{ch: {Offset: 5, Epoch: "OmrtARns"}}
	var f centrifugo.Frame
	if err := f.Parse([]byte(`{"id":1,"connect":{"subs":{"personal:#u1":{"recoverable":true,"epoch":"OmrtARns","offset":1,"recovered":true}}}}`)); err != nil {
		t.Fatal(err)
	}
	p.Update(&f)
	if p[ch].Offset != 5 {
		t.Errorf("position moved back to %+v", p[ch])
	}

	// Without history nothing is tracked.
	p = centrifugo.Positions{}
	if err := f.Parse([]byte(connectOff + "\n" + pushNoHistory)); err != nil {
		t.Fatal(err)
	}
	p.Update(&f)
	if len(p) != 0 {
		t.Errorf("positions without history: %v", p)
	}
}

func TestShouldReconnect(t *testing.T) {
	for code, want := range map[int]bool{
		1000: true, 1006: true, 3001: true, 3012: true, 3499: true,
		3500: false, 3503: false, 3999: false, 4000: true, 4499: true, 4500: false, 4999: false, 5000: true,
	} {
		if got := centrifugo.ShouldReconnect(code); got != want {
			t.Errorf("ShouldReconnect(%d) = %v, want %v", code, got, want)
		}
	}
}

// FuzzFrameParse checks that Parse never panics and finds no more replies
// than the message has lines.
func FuzzFrameParse(f *testing.F) {
	for _, s := range []string{`{}`, connectOff, connectOn, connectRecover, twoPushes + "\n{}", pushNoHistory, refused} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var fr centrifugo.Frame
		if err := fr.Parse(msg); err != nil {
			return
		}
		lines := 1
		for _, b := range msg {
			if b == '\n' {
				lines++
			}
		}
		live := 0
		for _, p := range fr.Publications {
			if !p.Recovered {
				live++
			}
		}
		if n := fr.Pings + live + len(fr.Errors) + fr.Other; n > lines {
			t.Errorf("%d replies in %d lines", n, lines)
		}
	})
}

// BenchmarkFrameParse measures the client side's cost of one live
// publication (a load run parses one per delivery).
func BenchmarkFrameParse(b *testing.B) {
	msg := []byte(`{"push":{"channel":"personal:#u12345","pub":{"data":{"t":1712345678901234567,"seq":42},"offset":7}}}`)
	var f centrifugo.Frame
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Parse(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParsePubAgrees checks the fast path for live publications against the
// JSON decoder: for a valid reply, both read the same publication.
func FuzzParsePubAgrees(f *testing.F) {
	for _, s := range []string{pushNoHistory, twoPushes[:strings.IndexByte(twoPushes, '\n')],
		`{"push":{"channel":"c","pub":{"data":"x,\"offset\":1","offset":2}}}`,
		`{"push":{"channel":"c\"d","pub":{"data":1}}}`,
		`{"push":{"channel":"c","pub":{"data":1,"offset":2,"offset":3}}}`,
		`{"push":{"channel":"c","pub":{"data":{"offset":1},"tags":{"a":"b"}}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") || !json.Valid([]byte(line)) {
			return
		}
		var fast centrifugo.Frame
		if err := fast.Parse([]byte(line)); err != nil {
			return // valid JSON, but not a reply (a field of the wrong type)
		}
		var slow struct {
			Push *struct {
				Channel string `json:"channel"`
				Pub     *struct {
					Data   json.RawMessage `json:"data"`
					Offset uint64          `json:"offset"`
				} `json:"pub"`
			} `json:"push"`
		}
		_ = json.Unmarshal([]byte(line), &slow)
		if len(fast.Publications) != 1 {
			return // not a publication, or one for the decoder: nothing to compare
		}
		p := fast.Publications[0]
		if slow.Push == nil || slow.Push.Pub == nil || p.Channel != slow.Push.Channel ||
			!bytes.Equal(p.Data, slow.Push.Pub.Data) || p.Offset != slow.Push.Pub.Offset {
			t.Errorf("parsed %+v (data %s) from %s", p, p.Data, line)
		}
	})
}
