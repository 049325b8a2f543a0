package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDirtySetMatchesModel runs random puts, removes and listings against a
// plain map: first must always return the smallest keys after its cursor in
// order, each once, with their latest values, however keys come and go
// between listings.
func TestDirtySetMatchesModel(t *testing.T) {
	tests := []struct {
		name                   string
		putPct, removePct, ids int // the rest of the steps list
	}{
		{"listing often", 50, 30, 300},
		{"listing rarely", 60, 39, 300},
		{"mostly removes", 30, 60, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkDirtySetModel(t, tt.putPct, tt.removePct, tt.ids)
		})
	}
}

func checkDirtySetModel(t *testing.T, putPct, removePct, nIDs int) {
	rng := rand.New(rand.NewPCG(1, uint64(putPct)))
	d := newDirtySet()
	model := map[string]uint64{}
	ids := make([]posID, nIDs)
	for i := range ids {
		ids[i] = posID{"t", fmt.Sprintf("u%d", i%7), fmt.Sprintf("d%d", i), "user"}
	}
	key := func(id posID) []byte { return positionKey(prefixDirty, id.Tenant, id.User, id.Device, id.Feed) }
	for step := range 20000 {
		id := ids[rng.IntN(len(ids))]
		switch op := rng.IntN(100); {
		case op < putPct:
			seq := uint64(step)
			d.put(key(id), AckPosition{Tenant: id.Tenant, User: id.User, Device: id.Device, Feed: id.Feed, Epoch: "e", Seq: seq})
			model[string(key(id))] = seq
		case op < putPct+removePct:
			d.remove(key(id))
			delete(model, string(key(id)))
		default:
			limit := rng.IntN(len(ids)+20) - 10 // sometimes <= 0: all
			after := ""                         // half the time a cursor, present or not
			if rng.IntN(2) == 0 {
				after = string(key(ids[rng.IntN(len(ids))]))
			}
			got := d.first(after, limit)
			want := slices.DeleteFunc(slices.Sorted(maps.Keys(model)), func(k string) bool { return k <= after })
			if limit > 0 && limit < len(want) {
				want = want[:limit]
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: first(%q, %d) = %d positions, want %d", step, after, limit, len(got), len(want))
			}
			for i, p := range got {
				k := string(key(p.id()))
				if k != want[i] || p.Seq != model[k] {
					t.Fatalf("step %d: first(%d)[%d] = %q seq %d, want %q seq %d", step, limit, i, k, p.Seq, want[i], model[want[i]])
				}
			}
		}
		if d.len() != len(model) {
			t.Fatalf("step %d: len = %d, want %d", step, d.len(), len(model))
		}
		if n := len(d.sorted) + len(d.added); n > 2*d.len()+listSlack {
			t.Fatalf("step %d: lists hold %d keys for %d entries", step, n, d.len())
		}
	}
}

// TestDirtySetEmptiesLists checks that an empty set holds no key lists.
func TestDirtySetEmptiesLists(t *testing.T) {
	d := newDirtySet()
	for i := range 100 {
		d.put(positionKey(prefixDirty, "t", "u", fmt.Sprintf("d%d", i), "f"), pos("t", "u", fmt.Sprintf("d%d", i), "f", "e", 1))
	}
	if got := d.first("", 10); len(got) != 10 {
		t.Fatalf("first(10) = %d positions", len(got))
	}
	for i := range 100 {
		d.remove(positionKey(prefixDirty, "t", "u", fmt.Sprintf("d%d", i), "f"))
	}
	if d.sorted != nil || d.added != nil || d.len() != 0 {
		t.Errorf("empty set keeps %d sorted and %d added keys", len(d.sorted), len(d.added))
	}
}

// TestDirtySetShrinksAfterBacklog: once a cycle (filled, then emptied by
// the hand-off) stays far below an earlier backlog, the set makes its map
// anew (a Go map keeps the memory of its largest size); a steady load keeps
// its map. The contents stay exact throughout.
func TestDirtySetShrinksAfterBacklog(t *testing.T) {
	d := newDirtySet()
	key := func(i int) []byte { return positionKey(prefixDirty, "t", "u", fmt.Sprintf("d%05d", i), "user") }
	fill := func(from, n int) {
		for i := from; i < from+n; i++ {
			d.put(key(i), AckPosition{Tenant: "t", User: "u", Device: fmt.Sprintf("d%05d", i), Feed: "user", Epoch: "e", Seq: uint64(i)})
		}
	}
	drain := func(from, n int) {
		got := d.first("", 0)
		if len(got) != n || got[0].Device != fmt.Sprintf("d%05d", from) || got[n-1].Seq != uint64(from+n-1) {
			t.Fatalf("listed %d positions, want %d from d%05d", len(got), n, from)
		}
		for i := from; i < from+n; i++ {
			d.remove(key(i))
		}
	}
	fill(0, 4000) // a backlog
	drain(0, 4000)
	fill(0, 3000) // a steady load about that size keeps the map
	drain(0, 3000)
	if d.peak != 4000 {
		t.Fatalf("peak %d after a cycle of 3000: the map was made anew", d.peak)
	}
	fill(5000, 100) // the load fell off: the map is made anew
	drain(5000, 100)
	if d.peak != 100 {
		t.Fatalf("peak %d after a cycle of 100 below a peak of 4000, want 100", d.peak)
	}
	fill(0, 10)
	drain(0, 10)
}
