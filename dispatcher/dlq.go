package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// DLQConfig says where the dead-letter stream is and where replays go.
type DLQConfig struct {
	Space      keys.Space    // key prefix; the zero value is "herald:"
	Partitions int           // ingest partitions, as the dispatchers use them
	Limits     events.Limits // what a replayed entry must satisfy
}

// DLQ inspects and replays the dead-letter stream. It is safe for
// concurrent use.
type DLQ struct {
	rdb redis.UniversalClient
	cfg DLQConfig
}

// NewDLQ returns a DLQ over rdb.
func NewDLQ(rdb redis.UniversalClient, cfg DLQConfig) *DLQ { return &DLQ{rdb: rdb, cfg: cfg} }

// Len returns the number of dead letters.
func (q *DLQ) Len(ctx context.Context) (int64, error) {
	n, err := q.rdb.XLen(ctx, q.cfg.Space.DLQ()).Result()
	if err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// List returns up to count dead letters with ids after the given one
// ("" = from the oldest), oldest first.
func (q *DLQ) List(ctx context.Context, count int64, after string) ([]DeadLetter, error) {
	start := "-"
	if after != "" {
		if !validID(after) {
			return nil, fmt.Errorf("%w: %q", ErrBadDLQID, after)
		}
		start = "(" + after
	}
	msgs, err := q.rdb.XRangeN(ctx, q.cfg.Space.DLQ(), start, "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = parseDeadLetter(m.ID, m.Values)
	}
	return out, nil
}

// Show returns one dead letter, or ErrNotFound.
func (q *DLQ) Show(ctx context.Context, id string) (DeadLetter, error) {
	if !validID(id) {
		return DeadLetter{}, fmt.Errorf("%w: %q", ErrBadDLQID, id)
	}
	msgs, err := q.rdb.XRange(ctx, q.cfg.Space.DLQ(), id, id).Result()
	if err != nil {
		return DeadLetter{}, fmt.Errorf("read dead letter %s: %w", id, err)
	}
	if len(msgs) == 0 {
		return DeadLetter{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return parseDeadLetter(msgs[0].ID, msgs[0].Values), nil
}

// Purge deletes every dead letter and returns how many there were.
func (q *DLQ) Purge(ctx context.Context) (int64, error) {
	var n *redis.IntCmd
	_, err := q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.XLen(ctx, q.cfg.Space.DLQ())
		p.Del(ctx, q.cfg.Space.DLQ())
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("purge dead letters: %w", err)
	}
	return n.Val(), nil
}

// FixFunc may change a dead letter's Fields before it is replayed; an
// error leaves the entry in the dead-letter stream.
type FixFunc func(*DeadLetter) error

// Replayed is the outcome of replaying one dead letter.
type Replayed struct {
	ID     string // the dead letter's id
	Stream string // the ingest stream it was published to
	NewID  string // its new id there
	Err    error  // why it was not replayed (it stays in the dead-letter stream)
}

// Replay publishes the given dead letters again, after fix (nil = as they
// are): each is checked against the contract, added to the ingest stream
// of its tenant and then deleted from the dead-letter stream. An entry that
// is missing, still malformed or refused by fix is reported in its
// Replayed.Err and left where it is. An id given twice is replayed once.
// The error is for Redis failures. Two replays of the same dead letter at
// once may both publish it; run one at a time.
func (q *DLQ) Replay(ctx context.Context, ids []string, fix FixFunc) ([]Replayed, error) {
	out := make([]Replayed, 0, len(ids))
	var dls []DeadLetter
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue // named twice: published once
		}
		seen[id] = true
		dl, err := q.Show(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound), errors.Is(err, ErrBadDLQID):
			out = append(out, Replayed{ID: id, Err: err})
		case err != nil:
			return out, err
		default:
			dls = append(dls, dl)
		}
	}
	res, err := q.replay(ctx, dls, fix)
	return append(out, res...), err
}

// ReplayAll replays every dead letter there is when it starts, as Replay
// does, oldest first. Dead letters added meanwhile are left alone: a
// replayed event that a running dispatcher dead-letters again comes back
// at the end of the stream, and taking it again would loop for good.
func (q *DLQ) ReplayAll(ctx context.Context, fix FixFunc) ([]Replayed, error) {
	last, err := q.rdb.XRevRangeN(ctx, q.cfg.Space.DLQ(), "+", "-", 1).Result()
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	if len(last) == 0 {
		return nil, nil
	}
	end := last[0].ID
	var out []Replayed
	after := ""
	for {
		page, err := q.List(ctx, 100, after)
		if err != nil {
			return out, err
		}
		n := len(page)
		for n > 0 && idLess(end, page[n-1].ID) {
			n-- // added after the start
		}
		if n == 0 {
			return out, nil
		}
		res, err := q.replay(ctx, page[:n], fix)
		out = append(out, res...)
		if err != nil || n < len(page) {
			return out, err
		}
		after = page[n-1].ID
	}
}

// replay fixes and checks dls, adds the good ones to their ingest streams
// in one pipeline and deletes those that were added in a second one.
func (q *DLQ) replay(ctx context.Context, dls []DeadLetter, fix FixFunc) ([]Replayed, error) {
	out := make([]Replayed, len(dls))
	var todo []int
	for i := range dls {
		out[i] = Replayed{ID: dls[i].ID}
		if err := q.prepare(&dls[i], fix); err != nil {
			out[i].Err = err
			continue
		}
		out[i].Stream = q.cfg.Space.IngestStream(dls[i].Fields[events.FieldTenant], q.cfg.Partitions)
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return out, nil
	}
	adds := make([]*redis.StringCmd, len(todo))
	_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for j, i := range todo {
			adds[j] = p.XAdd(ctx, &redis.XAddArgs{Stream: out[i].Stream, Values: contractValues(dls[i].Fields)})
		}
		return nil
	})
	var added []string
	for j, i := range todo {
		if e := adds[j].Err(); e != nil {
			out[i].Err = fmt.Errorf("publish to %s: %w", out[i].Stream, e)
			continue
		}
		out[i].NewID = adds[j].Val()
		added = append(added, dls[i].ID)
	}
	if len(added) > 0 {
		if derr := q.rdb.XDel(ctx, q.cfg.Space.DLQ(), added...).Err(); derr != nil {
			return out, fmt.Errorf("delete %d replayed dead letters (they were published; delete them by hand): %w", len(added), derr)
		}
	}
	if err != nil {
		return out, fmt.Errorf("replay dead letters: %w", err)
	}
	return out, nil
}

func (q *DLQ) prepare(dl *DeadLetter, fix FixFunc) error {
	if fix != nil {
		if err := fix(dl); err != nil {
			return err
		}
	}
	if _, err := q.cfg.Limits.Parse(dl.Fields); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// contractOrder is the order of the contract's fields on replay; x-
// extensions follow, sorted.
var contractOrder = []string{
	events.FieldType, events.FieldTenant, events.FieldTo, events.FieldData,
	events.FieldID, events.FieldDevice, events.FieldTTL, events.FieldTS,
}

func contractValues(fields map[string]string) []any {
	v := make([]any, 0, 2*len(fields))
	for _, k := range contractOrder {
		if x, ok := fields[k]; ok {
			v = append(v, k, x)
		}
	}
	var ext []string
	for k := range fields {
		if !slices.Contains(contractOrder, k) {
			ext = append(ext, k)
		}
	}
	slices.Sort(ext)
	for _, k := range ext {
		v = append(v, k, fields[k])
	}
	return v
}

// validID reports whether id looks like a stream id: "<ms>-<seq>" or "<ms>".
func validID(id string) bool {
	ms, seq, hasSeq := strings.Cut(id, "-")
	return isDigits(ms) && (!hasSeq || isDigits(seq))
}

func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
