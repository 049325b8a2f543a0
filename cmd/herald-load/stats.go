package main

import (
	"maps"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// histogram records durations in microseconds in log-linear buckets, like
// HdrHistogram: values below 2^(histSubBits+1) µs (256 µs) are exact, and
// every octave above is split into 2^histSubBits equal buckets, so a
// recorded value is off by less than 1/128 (0.8%). Recording is lock-free
// (atomic counters), so every client goroutine of a worker records into one
// histogram; histograms merge by adding counts, which is how the
// coordinator combines its workers'.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histMaxBits = 40 // values are clamped at 2^40 µs (about 12.7 days)
	histBuckets = 2*histSub + (histMaxBits-histSubBits-1)*histSub
)

// histBucket is the index of v's bucket.
func histBucket(v uint64) int {
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	n := bits.Len64(v)
	if n <= histSubBits+1 {
		return int(v) // 0..255 exactly
	}
	shift := n - (histSubBits + 1)
	top := v >> shift // in [histSub, 2*histSub)
	return 2*histSub + (shift-1)*histSub + int(top-histSub)
}

// histUpper is the highest value that falls into bucket i.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	top := uint64((i-2*histSub)%histSub + histSub)
	return (top+1)<<shift - 1
}

// record adds one value in microseconds; negative values count as 0.
func (h *histogram) record(us int64) {
	v := uint64(max(us, 0))
	h.counts[histBucket(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// recordSince records the time from t (unix µs) to now.
func (h *histogram) recordSince(tUS int64, now time.Time) { h.record(now.UnixMicro() - tUS) }

// histData is a histogram's wire form between worker and coordinator: only
// the buckets that hold something, as [index, count] pairs.
type histData struct {
	Buckets [][2]uint64 `json:"b,omitempty"`
	N       uint64      `json:"n"`
	Sum     uint64      `json:"sum"`
	Max     uint64      `json:"max"`
}

func (h *histogram) data() histData {
	d := histData{N: h.n.Load(), Sum: h.sum.Load(), Max: h.max.Load()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c > 0 {
			d.Buckets = append(d.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return d
}

// merge adds d's counts to h. Unknown bucket indexes are ignored.
func (h *histogram) merge(d histData) {
	for _, b := range d.Buckets {
		if b[0] < histBuckets {
			h.counts[b[0]].Add(b[1])
		}
	}
	h.n.Add(d.N)
	h.sum.Add(d.Sum)
	for {
		m := h.max.Load()
		if d.Max <= m || h.max.CompareAndSwap(m, d.Max) {
			return
		}
	}
}

// quantile is the smallest bucket upper bound at or below which a fraction
// q of the values lie (never above the exact maximum); 0 when empty.
func (h *histogram) quantile(q float64) uint64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	var seen uint64
	for i := range h.counts {
		if seen += h.counts[i].Load(); seen >= rank {
			return min(histUpper(i), h.max.Load())
		}
	}
	return h.max.Load()
}

// latencySummary is a histogram's percentiles in milliseconds.
type latencySummary struct {
	N    uint64  `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func (h *histogram) summary() latencySummary {
	ms := func(us uint64) float64 { return round3(float64(us) / 1000) }
	s := latencySummary{N: h.n.Load(), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)),
		P99: ms(h.quantile(0.99)), P999: ms(h.quantile(0.999)), Max: ms(h.max.Load())}
	if s.N > 0 {
		s.Mean = round3(float64(h.sum.Load()) / float64(s.N) / 1000)
	}
	return s
}

// round3 rounds to three decimals, which is what the reports print.
func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// medianP90 returns the median and the 90th percentile (nearest rank) of xs.
func medianP90(xs []float64) (median, p90 float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	if len(s)%2 == 1 {
		median = s[len(s)/2]
	} else {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, rank(0.9)
}

// windowWidthUS is the width of the latency windows: notifications are
// grouped by the time they were published, in windows of 5 s aligned to
// the Unix epoch, so that workers agree on them without talking.
const windowWidthUS = 5_000_000

// windowHists is a latency histogram per window of publish time: where in
// a run the tail came from (a few stalls, or everything slow).
type windowHists struct {
	mu   sync.Mutex
	m    map[int64]*histogram
	last atomic.Pointer[slotHist] // the window most notifications fall in
}

type slotHist struct {
	slot int64
	h    *histogram
}

// record adds a latency of latUS for a notification published at tUS.
func (w *windowHists) record(tUS, latUS int64) {
	slot := tUS / windowWidthUS
	if c := w.last.Load(); c != nil && c.slot == slot {
		c.h.record(latUS)
		return
	}
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[int64]*histogram)
	}
	h := w.m[slot]
	if h == nil {
		h = new(histogram)
		w.m[slot] = h
	}
	w.mu.Unlock()
	w.last.Store(&slotHist{slot, h})
	h.record(latUS)
}

// data is the windows' wire form, by slot (publish time / width).
func (w *windowHists) data() map[int64]histData {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int64]histData, len(w.m))
	for slot, h := range w.m {
		out[slot] = h.data()
	}
	return out
}

// merge adds a worker's windows.
func (w *windowHists) merge(d map[int64]histData) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = make(map[int64]*histogram)
	}
	for slot, hd := range d {
		h := w.m[slot]
		if h == nil {
			h = new(histogram)
			w.m[slot] = h
		}
		h.merge(hd)
	}
}

// windowSummary is one window of a run: its start in seconds after the
// first publish, and the latency of what was published in it.
type windowSummary struct {
	FromS float64 `json:"from_s"`
	latencySummary
}

// summaries returns the windows in time order, from the one that holds
// startUS (the first publish) to the last with anything in it; a window in
// between with nothing delivered (a stall) is there with n 0.
func (w *windowHists) summaries(startUS int64) []windowSummary {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) == 0 {
		return nil
	}
	first, last := startUS/windowWidthUS, slices.Max(slices.Collect(maps.Keys(w.m)))
	var out []windowSummary
	for slot := first; slot <= last; slot++ {
		ws := windowSummary{FromS: round3(float64(slot*windowWidthUS-startUS) / 1e6)}
		if h := w.m[slot]; h != nil {
			ws.latencySummary = h.summary()
		}
		out = append(out, ws)
	}
	return out
}
