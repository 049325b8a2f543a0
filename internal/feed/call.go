package feed

import (
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// call is one run of the append script: the indexes of its requests in
// the slice given to Append, in order.
type call struct {
	idx []int
}

// plan splits reqs into script calls as the config's Grouping allows. The
// calls run in order, so a feed's requests, which are in slice order within
// a call and spread over calls in order, are appended in slice order.
func (a *Appender) plan(reqs []Request) []call {
	idx := make([]int, len(reqs))
	for i := range idx {
		idx[i] = i
	}
	switch a.cfg.Grouping {
	case GroupNone:
		calls := make([]call, len(reqs))
		for i := range calls {
			calls[i] = call{idx: idx[i : i+1]}
		}
		return calls
	case GroupFeed:
		return a.planPerFeed(reqs)
	}
	var calls []call
	for from := 0; from < len(reqs); {
		n, size := 0, 0
		for from+n < len(reqs) && a.fits(n, size, &reqs[from+n]) {
			size += len(reqs[from+n].Data)
			n++
		}
		calls = append(calls, call{idx: idx[from : from+n : from+n]})
		from += n
	}
	return calls
}

// planPerFeed gives each feed its own calls, in the order the feeds first
// appear.
func (a *Appender) planPerFeed(reqs []Request) []call {
	var calls []call
	var sizes []int
	open := make(map[keys.Feed]int) // the last call of each feed
	for i := range reqs {
		r := &reqs[i]
		j, ok := open[r.Feed]
		if !ok || !a.fits(len(calls[j].idx), sizes[j], r) {
			j = len(calls)
			calls, sizes = append(calls, call{}), append(sizes, 0)
			open[r.Feed] = j
		}
		calls[j].idx = append(calls[j].idx, i)
		sizes[j] += len(r.Data)
	}
	return calls
}

// fits reports whether r may join a call that has n requests with size
// bytes of data.
func (a *Appender) fits(n, size int, r *Request) bool {
	return n == 0 || (n < a.cfg.BatchSize && size+len(r.Data) <= maxCallBytes)
}

// Number of ARGV of append.lua before the requests', and per request.
const (
	argsHead = 6
	argsEach = 8
)

// args returns the KEYS and ARGV of one call of append.lua (see its
// header). epoch is given to every feed the call creates or resets.
func (a *Appender) args(reqs []Request, idx []int, now int64, epoch string) ([]string, []any) {
	sp := a.cfg.Space
	ks := make([]string, 0, 3*len(idx))
	args := make([]any, 0, argsHead+argsEach*len(idx))
	ttl := a.cfg.FeedTTL
	args = append(args, a.cfg.MaxLen, int64(ttl/time.Second), int64(a.cfg.IdemTTL/time.Second),
		now, int64((ttl-ttl/8)/time.Second), epoch)
	for _, i := range idx {
		r := &reqs[i]
		meta := sp.FeedMeta(r.Feed)
		idem := meta // no idempotency key
		if r.IdemKey != "" {
			idem = sp.FeedIdem(r.Feed, r.IdemKey)
		}
		exp := ""
		if r.Exp != 0 {
			exp = strconv.FormatInt(r.Exp, 10)
		}
		ks = append(ks, sp.FeedStream(r.Feed), meta, idem)
		args = append(args, sp.FeedChannel(r.Feed), r.SourceStream, r.SourceID, r.Type, r.TS, exp, r.Device, r.Data)
	}
	return ks, args
}

// parseResults writes the results of one call into out.
func parseResults(c *redis.Cmd, idx []int, out []Result) error {
	vals, err := c.Slice()
	if err != nil {
		return err
	}
	if len(vals) != 3*len(idx) {
		return fmt.Errorf("script returned %d values for %d requests, want %d", len(vals), len(idx), 3*len(idx))
	}
	for j, i := range idx {
		status, _ := vals[3*j].(int64)
		seq, _ := vals[3*j+1].(int64)
		epoch, _ := vals[3*j+2].(string)
		out[i] = Result{Appended: status == 1, Seq: uint64(seq), Epoch: epoch}
	}
	return nil
}
