package feed

import (
	"fmt"
	"strconv"
	"time"

	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// call is one run of the append script: the indexes of its requests in
// the slice given to Append.
type call struct {
	idx []int
}

// plan splits reqs into script calls as the config's Grouping allows.
//
// Except with GroupNone, all of a feed's requests go to one call, in slice
// order, even past BatchSize. That is what makes a failed call safe to run
// again: a call stops at its first failing request, and if a later call had
// appended newer requests of a feed the failed call did not reach, running
// it again would drop that feed's older requests as already seen. GroupNone
// splits feeds, so its calls run in one transaction (see run).
func (a *Appender) plan(reqs []Request) []call {
	if a.cfg.Grouping == GroupNone {
		calls := make([]call, len(reqs))
		for i := range calls {
			calls[i] = call{idx: []int{i}}
		}
		return calls
	}
	feeds, next := feedLists(reqs)
	idx := make([]int, 0, len(reqs)) // every call is a piece of it
	var calls []call
	start, n, size := 0, 0, 0
	for _, f := range feeds {
		full := n+f.n > a.cfg.BatchSize || size+f.size > maxCallBytes || a.cfg.Grouping == GroupFeed
		if n > 0 && full {
			calls = append(calls, call{idx: idx[start:len(idx):len(idx)]})
			start, n, size = len(idx), 0, 0
		}
		for i := f.first; i >= 0; i = next[i] {
			idx = append(idx, i)
		}
		n, size = n+f.n, size+f.size
	}
	return append(calls, call{idx: idx[start:]})
}

// feedList is one feed's requests in a slice: the first one, how many
// there are and their data size. The others follow through next.
type feedList struct {
	first, last, n, size int
}

// feedLists returns the feeds of reqs in the order they first appear, and
// for each request the index of the next one of its feed (-1 for none).
func feedLists(reqs []Request) ([]feedList, []int) {
	pos := make(map[keys.Feed]int, len(reqs))
	feeds := make([]feedList, 0, len(reqs))
	next := make([]int, len(reqs))
	for i := range reqs {
		next[i] = -1
		j, ok := pos[reqs[i].Feed]
		if !ok {
			j = len(feeds)
			pos[reqs[i].Feed] = j
			feeds = append(feeds, feedList{first: i, last: i})
		} else {
			next[feeds[j].last] = i
			feeds[j].last = i
		}
		feeds[j].n++
		feeds[j].size += len(reqs[i].Data)
	}
	return feeds, next
}

// Number of ARGV of append.lua before the requests', and per request.
const (
	argsHead = 6
	argsEach = 9
)

// args returns the KEYS and ARGV of one call of append.lua (see its
// header). epoch is given to every feed the call creates or resets.
func (a *Appender) args(reqs []Request, idx []int, now int64, epoch string) ([]string, []any) {
	sp := a.cfg.Space
	ks := make([]string, 0, 2*len(idx))
	args := make([]any, 0, argsHead+argsEach*len(idx))
	ttl := a.cfg.FeedTTL
	args = append(args, a.cfg.MaxLen, int64(ttl/time.Second), int64(a.cfg.IdemTTL/time.Second),
		now, int64((ttl-ttl/8)/time.Second), epoch)
	var src, srcField string // the last request's, most often the next one's too
	for _, i := range idx {
		r := &reqs[i]
		if r.SourceStream != src || srcField == "" {
			src, srcField = r.SourceStream, "src:"+r.SourceStream
		}
		idem := ""
		if r.IdemKey != "" {
			idem = "i:" + r.IdemKey
		}
		exp := ""
		if r.Exp != 0 {
			exp = strconv.FormatInt(r.Exp, 10)
		}
		ks = append(ks, sp.FeedStream(r.Feed), sp.FeedMeta(r.Feed))
		args = append(args, sp.FeedChannel(r.Feed), srcField, r.SourceID, idem, r.Type, r.TS, exp, r.Device, r.Data)
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
