package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/replicas"
	"github.com/redis/go-redis/v9"
)

// Producer publishes events to Herald's ingest streams. It holds no state
// besides its settings and is safe for concurrent use.
type Producer struct {
	rdb        redis.UniversalClient
	space      keys.Space
	partitions int
	tenant     string
	maxLen     int64
	minIDAge   time.Duration
	limits     events.Limits
	replicas   replicas.Policy
	now        func() time.Time

	// Filled in by New: the ingest streams by partition, also boxed as
	// command arguments, and the boxed MAXLEN, so that encoding an entry
	// does not allocate them again.
	streams    []string
	streamArgs []any
	maxLenArg  any
}

// New returns a Producer that publishes through client. The client's own
// settings apply, including its retries: see the package documentation.
func New(client redis.UniversalClient, opts ...Option) *Producer {
	if client == nil {
		panic("producer: New with a nil client")
	}
	p := &Producer{rdb: client, maxLen: DefaultMaxLen}
	for _, opt := range opts {
		opt(p)
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.streams = p.space.IngestStreams(p.partitions)
	p.streamArgs = make([]any, len(p.streams))
	for i, s := range p.streams {
		p.streamArgs[i] = s
	}
	p.maxLenArg = p.maxLen
	return p
}

// partition is the index in p.streams of a tenant's ingest stream: the
// stream keys.Space.IngestStream names.
func (p *Producer) partition(tenant string) int {
	if len(p.streams) == 1 {
		return 0
	}
	return int(keys.Partition(tenant, len(p.streams)))
}

// Publish sends ev as one entry of the ingest stream and returns the entry
// id. The entry's data is the JSON encoding of ev and its type
// ev.EventType(); its audience is To(...) if given, else ev's
// DefaultAudience. A contract violation is refused before anything is sent,
// with an error wrapping the *events.ValidationError that names the field.
func (p *Producer) Publish(ctx context.Context, ev events.Event, opts ...PublishOption) (string, error) {
	return p.publish(ctx, Event(ev, opts...))
}

// PublishEnvelope sends a raw entry, for events without a Go type. A zero
// Tenant is the producer's tenant, a zero TS the current time, and a zero
// To the type's default audience (registered types only); everything else
// is sent as given, once it passes validation.
func (p *Producer) PublishEnvelope(ctx context.Context, env events.Envelope) (string, error) {
	return p.publish(ctx, Envelope(env))
}

func (p *Producer) publish(ctx context.Context, m Message) (string, error) {
	e, err := p.prepare(m, p.newSendState())
	if err != nil {
		return "", publishErr(m.typeName(), "", err)
	}
	if err := ctx.Err(); err != nil {
		return "", publishErr(e.typ, e.stream, err)
	}
	cmd := e.cmd(ctx)
	if p.replicas.On() {
		err = replicas.Exec(ctx, p.rdb, p.replicas, 1, false, func(int) string { return e.stream },
			func(pipe redis.Pipeliner, _ int) { _ = pipe.Process(ctx, cmd) })
		if cmd.Err() != nil {
			err = cmd.Err() // the XADD's own failure says more than the WAIT's
		}
	} else {
		err = p.rdb.Process(ctx, cmd)
	}
	if err != nil {
		return "", publishErr(e.typ, e.stream, err)
	}
	return cmd.Val(), nil
}

// PublishBatch sends every message in one pipelined round trip (Redis
// Cluster: one per node) and returns their entry ids in order. All messages
// are validated first: if one is invalid nothing is sent, and the error is a
// *BatchError naming its index (wrapping the *events.ValidationError that
// names the field). If Redis fails part way, ids holds the ids of the
// entries that were stored ("" for the others) and the error is a
// *BatchError naming the first message that failed.
func (p *Producer) PublishBatch(ctx context.Context, msgs []Message) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	s := p.newSendState()
	entries := make([]entry, len(msgs))
	for i, m := range msgs {
		var err error
		if entries[i], err = p.prepare(m, s); err != nil {
			return nil, &BatchError{Index: i, Type: m.typeName(), Err: err}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish batch: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(entries))
	for i, e := range entries {
		cmds[i] = e.cmd(ctx)
	}
	var waitErr error
	if p.replicas.On() {
		waitErr = replicas.Exec(ctx, p.rdb, p.replicas, len(cmds), false, func(i int) string { return entries[i].stream },
			func(pipe redis.Pipeliner, i int) { _ = pipe.Process(ctx, cmds[i]) })
	} else {
		pipe := p.rdb.Pipeline()
		for _, c := range cmds {
			_ = pipe.Process(ctx, c) // queues; errors come from Exec
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	ids := make([]string, len(cmds))
	var first error
	for i, c := range cmds {
		id, err := c.Result()
		if err != nil && first == nil {
			first = &BatchError{Index: i, Type: entries[i].typ, Stream: entries[i].stream, Err: err}
		}
		ids[i] = id
	}
	if waitErr != nil {
		// stored, maybe, but not known to be on a replica: not stored as
		// far as a failover goes
		return make([]string, len(cmds)), errors.Join(first, fmt.Errorf("publish batch: %w", waitErr))
	}
	return ids, first
}

// publishErr wraps err as "publish <type> to <stream>: <err>".
func publishErr(typ, stream string, err error) error {
	var ve *events.ValidationError
	switch {
	case typ == "":
		typ = "event"
	case errors.As(err, &ve) && ve.Field == events.FieldType:
		typ = "event" // the type itself is bad: do not repeat it
	}
	if stream == "" {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return fmt.Errorf("publish %s to %s: %w", typ, stream, err)
}
