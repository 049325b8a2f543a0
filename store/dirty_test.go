package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDirtySetMatchesModel runs random puts, removes and listings against a
// plain map: first must always return the smallest keys in order, each once,
// with their latest values, however keys come and go between listings.
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
			got := d.first(limit)
			want := slices.Sorted(maps.Keys(model))
			if limit > 0 && limit < len(want) {
				want = want[:limit]
			}
			if len(got) != len(want) {
				t.Fatalf("step %d: first(%d) = %d positions, want %d", step, limit, len(got), len(want))
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
	if got := d.first(10); len(got) != 10 {
		t.Fatalf("first(10) = %d positions", len(got))
	}
	for i := range 100 {
		d.remove(positionKey(prefixDirty, "t", "u", fmt.Sprintf("d%d", i), "f"))
	}
	if d.sorted != nil || d.added != nil || d.len() != 0 {
		t.Errorf("empty set keeps %d sorted and %d added keys", len(d.sorted), len(d.added))
	}
}

// TestDirtySetShrinksAfterBacklog: after a backlog is handed off, the set
// rebuilds its map (a Go map keeps the memory of its largest size) and
// still holds exactly what was not removed, listable in order.
func TestDirtySetShrinksAfterBacklog(t *testing.T) {
	d := newDirtySet()
	key := func(i int) []byte { return positionKey(prefixDirty, "t", "u", fmt.Sprintf("d%05d", i), "user") }
	const n = 4000
	for i := range n {
		d.put(key(i), AckPosition{Tenant: "t", User: "u", Device: fmt.Sprintf("d%05d", i), Feed: "user", Epoch: "e", Seq: uint64(i)})
	}
	if got := d.first(10); len(got) != 10 || got[0].Device != "d00000" {
		t.Fatalf("first(10) = %v", got)
	}
	for i := range n - 100 { // hand off all but the last 100
		d.remove(key(i))
	}
	if d.peak > n/8 {
		t.Fatalf("peak %d after draining to %d entries: the map was not rebuilt", d.peak, d.len())
	}
	got := d.first(0)
	if len(got) != 100 || got[0].Device != fmt.Sprintf("d%05d", n-100) || got[99].Seq != n-1 {
		t.Fatalf("after shrinking: %d positions, first %v", len(got), got[0])
	}
}
