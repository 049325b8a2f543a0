package store

import (
	"slices"
	"time"
)

// dirtySet mirrors the dirty index in memory: for every position not yet
// flushed to Redis, keyed by its dirty-index key ("d/..."), the committed
// epoch, seq and time. The Store guards it with writeMu and changes it only
// once the matching pebble batch has committed, so it never holds a position
// the disk does not have, and a dirty position's entry equals its stored ACK
// value. Keying by the dirty-index key makes key order plain string order.
//
// first lists keys in order without sorting the whole set on every call: it
// keeps the keys sorted at its last full sort, plus the keys put since.
// Flushed keys are not removed from those lists (that would cost a search
// per key); first skips them, and drops them from the front, which is where
// the hand-off removes keys. The lists are rebuilt from the map once the keys
// put since the last sort outnumber the sorted ones, and dropped once they
// hold more than twice as many keys as the map, so memory stays bounded by
// the set.
type dirtySet struct {
	m      map[string]dirtyPos
	peak   int      // most entries m held since it was made: Go maps never give memory back
	cycle  int      // most entries since the set was last empty
	sorted []string // keys of m at the last full sort, in order; some may be gone
	added  []string // keys put into m since, in no order; some may be gone or repeated
}

type dirtyPos struct {
	id        posID
	epoch     string
	seq       uint64
	updatedAt time.Time
}

func newDirtySet() *dirtySet {
	return &dirtySet{m: make(map[string]dirtyPos)}
}

func (d *dirtySet) len() int { return len(d.m) }

// get returns the entry under key.
func (d *dirtySet) get(key []byte) (dirtyPos, bool) {
	cur, ok := d.m[string(key)]
	return cur, ok
}

// holds reports whether p is dirty at its epoch and seq; key is its
// dirty-index key.
func (d *dirtySet) holds(key []byte, p AckPosition) bool {
	cur, ok := d.get(key)
	return ok && cur.epoch == p.Epoch && cur.seq == p.Seq
}

// put sets the entry under key to p.
func (d *dirtySet) put(key []byte, p AckPosition) {
	v := dirtyPos{id: p.id(), epoch: p.Epoch, seq: p.Seq, updatedAt: p.UpdatedAt}
	if _, ok := d.m[string(key)]; ok {
		d.m[string(key)] = v
		return
	}
	k := string(key)
	d.m[k] = v
	d.peak, d.cycle = max(d.peak, len(d.m)), max(d.cycle, len(d.m))
	if d.sorted != nil {
		d.added = append(d.added, k)
		d.bound()
	}
}

// remove deletes the entry under key. When the set empties after a cycle
// that stayed far below its peak (the storm that made the map large is
// over), the map is made anew: a Go map keeps the memory of its largest
// size. A steady load, which fills and empties the set at about the same
// size every cycle, keeps its map and does not regrow it each time.
func (d *dirtySet) remove(key []byte) {
	delete(d.m, string(key))
	if len(d.m) == 0 {
		if d.peak >= shrinkAbove && d.cycle <= d.peak/8 {
			d.m, d.peak = make(map[string]dirtyPos), d.cycle
		}
		d.cycle = 0
	}
	d.bound()
}

// shrinkAbove is the peak size from which remove rebuilds the map.
const shrinkAbove = 1024

// bound drops the key lists when they hold mostly keys gone from the map
// (only listings prune them): the next listing sorts the map afresh, a cost
// paid for by the puts and removes that made the lists grow.
func (d *dirtySet) bound() {
	if len(d.sorted)+len(d.added) > 2*len(d.m)+listSlack {
		d.sorted, d.added = nil, nil
	}
}

// listSlack lets a small set keep its lists through a few changes.
const listSlack = 64

// first returns the positions of up to limit entries (every one if limit <=
// 0) whose keys sort after after ("" for all), the smallest keys, in key
// order.
func (d *dirtySet) first(after string, limit int) []AckPosition {
	if len(d.m) == 0 {
		return nil
	}
	if limit <= 0 || limit > len(d.m) {
		limit = len(d.m)
	}
	d.prepare()
	out := make([]AckPosition, 0, limit)
	last := ""
	i, j := 0, 0
	if after != "" {
		i, _ = slices.BinarySearch(d.sorted, after)
		j, _ = slices.BinarySearch(d.added, after)
	}
	for len(out) < limit {
		var k string
		switch {
		case i < len(d.sorted) && (j == len(d.added) || d.sorted[i] <= d.added[j]):
			k = d.sorted[i]
			i++
		case j < len(d.added):
			k = d.added[j]
			j++
		default:
			return out // unreachable while every key of m is in a list
		}
		cur, ok := d.m[k]
		if !ok || (len(out) > 0 && k == last) || k <= after {
			continue // flushed, in both lists, or the cursor itself
		}
		out = append(out, cur.position())
		last = k
	}
	return out
}

// prepare sorts the lists for first: a full sort of the map's keys when the
// keys put since the last one outnumber the sorted keys (so its cost is paid
// for by those puts), else a sort of the keys put since.
func (d *dirtySet) prepare() {
	d.sorted = d.trimFront(d.sorted)
	if d.sorted == nil || len(d.added) > len(d.sorted) {
		keys := make([]string, 0, len(d.m))
		for k := range d.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		d.sorted, d.added = keys, nil
		return
	}
	d.added = slices.DeleteFunc(d.added, func(k string) bool { _, ok := d.m[k]; return !ok })
	slices.Sort(d.added)
	d.added = slices.Compact(d.added)
}

// trimFront drops the gone keys at the front of a sorted list, where the
// hand-off removes them. It returns nil for an empty list.
func (d *dirtySet) trimFront(keys []string) []string {
	for len(keys) > 0 {
		if _, ok := d.m[keys[0]]; ok {
			return keys
		}
		keys = keys[1:]
	}
	return nil
}

// position rebuilds the AckPosition. UpdatedAt reads as it would from disk
// (UTC, whole nanoseconds, no monotonic clock reading), whether or not the
// store was reopened since it was written.
func (v dirtyPos) position() AckPosition {
	at := v.updatedAt
	if !at.IsZero() {
		at = time.Unix(0, at.UnixNano()).UTC()
	}
	return AckPosition{
		Tenant: v.id.Tenant, User: v.id.User, Device: v.id.Device, Feed: v.id.Feed,
		Epoch: v.epoch, Seq: v.seq, UpdatedAt: at,
	}
}
