package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/replicas"
	"github.com/redis/go-redis/v9"
)

// Bounds of one feed append pipeline. A batch whose audiences fan out to
// more feeds is appended in several pipelines, in order.
const (
	maxAppendRequests = 1000
	maxAppendBytes    = 8 << 20
)

// batch is a run of consecutive entries of the stream, handled together.
type batch struct {
	msgs []redis.XMessage
	// counts are the entries' delivery counts when they were claimed or
	// re-read; nil for a first delivery.
	counts map[string]int64
	// lateBefore marks entries that were claimed after newer entries of the
	// stream were handled: they are appended without the source-id check,
	// which would drop them, so they arrive out of order instead of never.
	lateBefore string
	// deadWritten are the entries whose dead letters a try of this batch
	// wrote, though it failed after: its next tries do not write them
	// again (a dead letter is written once).
	deadWritten map[string]bool
	// deferAck: a batch of new entries without dead letters is
	// acknowledged by the worker's next read, in the same MULTI, rather
	// than in a round trip of its own.
	deferAck bool
}

// handle processes b until it succeeds, retrying transient failures as
// they are. Any other failure sends the pending list through recover. It
// returns an error only when the worker must stop (ctx ended).
func (w *worker) handle(ctx context.Context, b *batch) error {
	err := w.retryTransient(ctx, b)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return w.recover(ctx)
}

// retryTransient processes b, and again after a backoff while it fails
// transiently. It returns nil, ctx's error, or the first other failure.
func (w *worker) retryTransient(ctx context.Context, b *batch) error {
	for {
		// The batch in flight is finished even during a shutdown: only the
		// retries stop.
		err := w.process(context.WithoutCancel(ctx), b)
		if err == nil {
			w.failures = 0
			return nil
		}
		w.lastErr = err
		w.d.m.errors.WithLabelValues("append").Inc()
		w.log.Warn("batch failed", logCount, len(b.msgs), logID, b.msgs[0].ID, logErr, err)
		if !w.backoff(ctx) {
			return ctx.Err()
		}
		if !transient(err) {
			return err
		}
	}
}

// recover handles this consumer's pending entries one at a time, after a
// failure that may come from one entry's data. Each entry is re-read from
// the pending list, which counts a delivery of that entry only, so an entry
// that keeps failing is dead-lettered once it has had MaxDeliveries, and
// the entries behind it flow again.
func (w *worker) recover(ctx context.Context) error {
	for ctx.Err() == nil {
		// entries already appended are acknowledged first, so that they
		// are not read again as pending
		if err := w.flushAcks(ctx); err != nil {
			w.opFailed(ctx, opAck, err)
			continue
		}
		msgs, err := w.readPending(ctx, 1)
		var counts map[string]int64
		if err == nil && len(msgs) > 0 {
			counts, err = w.deliveries(ctx, msgs)
		}
		if err != nil {
			w.opFailed(ctx, opRead, err)
			continue
		}
		if len(msgs) == 0 {
			return nil
		}
		_ = w.retryTransient(ctx, &batch{msgs: msgs, counts: counts}) // logged there; read again
	}
	return ctx.Err()
}

// process handles one batch: malformed entries and entries delivered too
// often go to the dead-letter stream, the others are appended to their
// feeds in one pipeline, and then the dead letters are written and every
// entry is acknowledged (see settle). Nothing is acknowledged unless
// everything before it was appended or dead-lettered; a repeated process
// is harmless since the feeds drop what they already have.
func (w *worker) process(ctx context.Context, b *batch) error {
	start := time.Now()
	p := w.plan(b)
	results, err := w.appendAll(ctx, p.reqs)
	if err != nil {
		return err
	}
	if err := w.settle(ctx, b, p.dead); err != nil {
		return err
	}
	w.hw = maxID(w.hw, b.msgs[len(b.msgs)-1].ID)
	w.count(b, p, results)
	w.d.m.batch.Observe(time.Since(start).Seconds())
	return nil
}

// plan is what process does with a batch.
type plan struct {
	reqs  []feed.Request
	owner []int // index in the batch of each request's entry
	dead  []deadLetter
	late  int // entries appended without the source-id check
}

func (w *worker) plan(b *batch) plan {
	p := plan{reqs: make([]feed.Request, 0, len(b.msgs))}
	for i, m := range b.msgs {
		if m.Values == nil {
			continue // deleted while pending: nothing to deliver, only to ack
		}
		n := b.counts[m.ID]
		if n > int64(w.cfg.MaxDeliveries) {
			reason := fmt.Sprintf("delivered %d times without success: %s", n-1, w.lastErrText())
			p.dead = append(p.dead, deadLetter{values: m.Values, reason: reason, kind: reasonDeliveries, sourceID: m.ID, deliveries: n - 1})
			continue
		}
		e, err := w.cfg.Limits.ParseValues(m.Values)
		if err != nil {
			p.dead = append(p.dead, deadLetter{values: m.Values, reason: err.Error(), kind: reasonMalformed, sourceID: m.ID, deliveries: max(n, 1)})
			continue
		}
		from := len(p.reqs)
		p.reqs = appendRequests(p.reqs, w.stream, m.ID, &e)
		late := b.lateBefore != "" && idLess(m.ID, b.lateBefore)
		for j := from; j < len(p.reqs); j++ {
			p.owner = append(p.owner, i)
			if late {
				p.reqs[j].SourceID = ""
			}
		}
		if late {
			p.late++
		}
	}
	if p.late > 0 {
		w.d.m.lateEntries.Add(float64(p.late))
		w.log.Warn("late entries appended out of order", logCount, p.late)
	}
	return p
}

func (w *worker) lastErrText() string {
	if w.lastErr == nil {
		return "the failures happened in another dispatcher or before a restart"
	}
	return w.lastErr.Error()
}

// appendShards is how many pipelines a batch's appends are split into, by
// feed, and sent concurrently: while Redis runs one, the client encodes or
// decodes the other. Measured on 2 cores: about 10% more events/s than one
// pipeline. A feed's requests all go to one pipeline, in order.
const appendShards = 2

// appendAll appends reqs, keeping the order of each feed's requests.
func (w *worker) appendAll(ctx context.Context, reqs []feed.Request) ([]feed.Result, error) {
	if len(reqs) < 64 {
		return w.appendSeq(ctx, reqs)
	}
	parts := make([][]feed.Request, appendShards)
	idx := make([][]int, appendShards)
	for i := range reqs {
		h := fnv32(reqs[i].Feed.Tag()) % uint32(appendShards)
		parts[h] = append(parts[h], reqs[i])
		idx[h] = append(idx[h], i)
	}
	out := make([]feed.Result, len(reqs))
	errs := make([]error, appendShards)
	var wg sync.WaitGroup
	for s := range parts {
		wg.Go(func() {
			res, err := w.appendSeq(ctx, parts[s])
			if err != nil {
				errs[s] = err
				return
			}
			for j, r := range res {
				out[idx[s][j]] = r
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fnv32 is FNV-1a, to spread feeds over the pipelines.
func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// appendSeq appends reqs in order, in pipelines of bounded size.
func (w *worker) appendSeq(ctx context.Context, reqs []feed.Request) ([]feed.Result, error) {
	out := make([]feed.Result, 0, len(reqs))
	for len(reqs) > 0 {
		n, size := 0, 0
		for n < len(reqs) && n < maxAppendRequests && (n == 0 || size+len(reqs[n].Data) <= maxAppendBytes) {
			size += len(reqs[n].Data)
			n++
		}
		res, err := w.d.app.Append(ctx, reqs[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, res...)
		reqs = reqs[n:]
	}
	return out, nil
}

// settle writes the dead letters and then acknowledges every entry of the
// batch: with deferAck (no dead letters, no replica acks) by the next
// read, else in a round trip of its own (with replica acks, one per
// master, each with its WAIT). An entry is acknowledged only once its dead letter is written: in
// one pipeline with the XADDs, the XACK would take even when an XADD
// failed (a WRONGTYPE or OOM on the dead-letter stream), and the entry
// would be in neither stream. A dead letter is written once: when a try
// fails after writing some, the next writes only the others.
func (w *worker) settle(ctx context.Context, b *batch, dead []deadLetter) error {
	if err := w.writeDead(ctx, b, dead); err != nil {
		return err
	}
	ids := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		ids[i] = m.ID
	}
	if b.deferAck && len(dead) == 0 && !w.cfg.Append.Replicas.On() {
		// the next read acknowledges them (with replica acks on, each
		// acknowledgement waits for its replicas here instead; dead
		// letters are acknowledged at once, so that a crash in between
		// does not write them again)
		w.unacked = append(w.unacked, ids...)
		return nil
	}
	var ack *redis.IntCmd
	err := w.settleExec(ctx, 1, w.stream, func(p redis.Pipeliner, _ int) {
		ack = p.XAck(ctx, w.stream, w.cfg.Group, ids...)
	})
	if err == nil {
		err = ack.Err()
	}
	if err != nil {
		return fmt.Errorf("acknowledge %d entries of %s: %w", len(ids), w.stream, err)
	}
	return nil
}

// writeDead writes the dead letters that b has not written yet, in one
// pipeline, and notes in b those that were written.
func (w *worker) writeDead(ctx context.Context, b *batch, dead []deadLetter) error {
	todo := make([]deadLetter, 0, len(dead))
	for _, dl := range dead {
		if !b.deadWritten[dl.sourceID] {
			todo = append(todo, dl)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	now := time.Now()
	cmds := make([]*redis.StringCmd, len(todo))
	err := w.settleExec(ctx, len(todo), w.cfg.Space.DLQ(), func(p redis.Pipeliner, i int) {
		cmds[i] = p.XAdd(ctx, &redis.XAddArgs{
			Stream: w.cfg.Space.DLQ(), MaxLen: w.cfg.DLQMaxLen, Approx: w.cfg.DLQMaxLen > 0,
			Values: todo[i].xaddValues(w.stream, now),
		})
	})
	written := 0
	for i, c := range cmds {
		if c == nil || c.Err() != nil {
			if c != nil && err == nil {
				err = c.Err()
			}
			continue
		}
		// counted when written, whatever happens after
		if b.deadWritten == nil {
			b.deadWritten = make(map[string]bool, len(todo))
		}
		b.deadWritten[todo[i].sourceID] = true
		w.d.m.dlq.WithLabelValues(todo[i].kind).Inc()
		written++
	}
	if written > 0 {
		// one line per batch: the dead-letter stream has the details
		w.log.Warn("entries dead-lettered", logCount, written, logID, todo[0].sourceID, "reason", todo[0].reason)
	}
	if err != nil {
		return fmt.Errorf("dead-letter %d entries of %s: %w", len(todo), w.stream, err)
	}
	return nil
}

// settleExec sends n commands queued by queue, all on key, in one pipeline;
// with replica acks, followed by a WAIT for the replicas: a dead letter
// lost in a failover would be lost for good, and an XACK lost would bring
// the entries back as pending, to be appended again as late ones (without
// their source positions, so a duplicate unless they carry an idempotency
// key). Each command also carries its own error.
func (w *worker) settleExec(ctx context.Context, n int, key string, queue func(redis.Pipeliner, int)) error {
	if pol := w.cfg.Append.Replicas; pol.On() {
		return replicas.Exec(ctx, w.rdb, pol, n, false, func(int) string { return key }, queue)
	}
	_, err := w.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			queue(p, i)
		}
		return nil
	})
	return err
}

// count updates the event and append counters of a processed batch.
func (w *worker) count(b *batch, p plan, results []feed.Result) {
	delivered := make([]bool, len(b.msgs))
	seen := make([]bool, len(b.msgs))
	var appended, dup int
	for j, r := range results {
		i := p.owner[j]
		seen[i] = true
		if r.Appended {
			delivered[i] = true
			appended++
		} else {
			dup++
		}
	}
	var nDelivered, nDup int
	for i := range b.msgs {
		switch {
		case delivered[i]:
			nDelivered++
		case seen[i]:
			nDup++
		}
	}
	m := w.d.m
	m.appends.WithLabelValues("appended").Add(float64(appended))
	m.appends.WithLabelValues("duplicate").Add(float64(dup))
	m.events.WithLabelValues(resultDelivered).Add(float64(nDelivered))
	m.events.WithLabelValues(resultDuplicate).Add(float64(nDup))
	m.events.WithLabelValues(resultDLQ).Add(float64(len(p.dead)))
}

func maxID(a, b string) string {
	if idLess(a, b) {
		return b
	}
	return a
}
