package e2e

import (
	"fmt"
	"testing"
)

// TestLedgerCatchesEveryFailure feeds the checker hand-made deliveries
// with one failure of each kind, without any process: a suite that passes
// must be one whose checker would have failed.
func TestLedgerCatchesEveryFailure(t *testing.T) {
	f := newFleet(t, &cluster{}, fleetConfig{tenants: []tenantSpec{{"acme", 2}, {"globex", 1}}, webEvery: 1, topicEvery: 1})
	led := &ledger{}
	add := func(s spec) int64 {
		e := int64(led.published() + 1)
		led.add(e, s, f.targets(s))
		return e
	}
	e1 := add(spec{tenant: "acme", users: []string{"a-u0"}})                // a-u0 phone and web
	e2 := add(spec{tenant: "acme", users: []string{"a-u0"}, device: "web"}) // a-u0 web
	e3 := add(spec{tenant: "acme", tenantWide: true})                       // the four acme devices
	e4 := add(spec{tenant: "globex", topic: newsTopic})                     // both globex devices
	add(spec{tenant: "acme", users: []string{f.ghosts["acme"][0]}})         // no device
	deliver := func(c int, epoch, feed string, seq uint64, e int64) {
		fr := &frame{T: "n", ID: fmt.Sprintf("%s-%d-%s", epoch, seq, feed), Feed: feed, Seq: seq}
		fr.Data.E = e
		f.clients[c].accept(fr)
	}
	// 0 a-u0/phone: everything, one twice on the wire.
	deliver(0, "ep", "user", 1, e1)
	deliver(0, "ep", "user", 1, e1)
	deliver(0, "ep", "tenant", 1, e3)
	// 1 a-u0/web: e1 after e2 although published before it.
	deliver(1, "ep", "user", 1, e2)
	deliver(1, "ep", "user", 2, e1)
	deliver(1, "ep", "tenant", 1, e3)
	// 2 a-u1/phone: seq 1 again with another event.
	deliver(2, "ep", "tenant", 1, e3)
	deliver(2, "ep", "tenant", 1, e4)
	// 3 a-u1/web: nothing (loses e3).
	// 4 g-u0/phone: its topic event, and acme's e1.
	deliver(4, "ep", "topic:"+newsTopic, 1, e4)
	deliver(4, "ep", "user", 1, e1)
	// 5 g-u0/web: e4 again after its feed changed epoch.
	deliver(5, "ep", "topic:"+newsTopic, 1, e4)
	deliver(5, "ep2", "topic:"+newsTopic, 1, e4)

	r := led.check(f)
	want := result{published: 5, clients: 6, deliveries: 9, lost: 1, dupWire: 2, outOfOrder: 1, unexpected: 1, conflicts: 1, epochs: 1, dupAfter: 1}
	got := *r
	got.samples, got.name = nil, ""
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("check = %+v\nwant    %+v", got, want)
	}
	if len(r.problems()) != 6 {
		t.Errorf("problems = %q, want six", r.problems())
	}
	t.Log(r.samples)
}
