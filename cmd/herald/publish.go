package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/progress"
	"github.com/heraldrt/herald/producer"
)

func init() {
	register(command{name: "publish", summary: "publish an event to the ingest stream (or many, for load)", run: runPublish})
}

const publishHelp = `Publishes one event and prints its stream entry id, or with --count many
events in pipelined batches, with progress on stderr and a summary at the end.
The data is JSON from --data, or from stdin with --data - (or when --data is
absent and stdin is not a terminal).
Examples:
  herald publish --tenant acme --type order.placed --data '{"order_id":"o-1","buyer_id":"42"}'
  echo '{"title":"Sale"}' | herald publish --tenant acme --type marketing.promotion --to topic:deals
  herald publish --tenant acme --type load.test --to tenant --data '{}' --count 100000 --rate 5000`

// publishFlags are the settings of one publish run.
type publishFlags struct {
	redis      redisOptions
	partitions int
	typ        string
	tenant     string
	to         string
	data       string
	id         string
	device     string
	ttl        time.Duration
	count      int
	rate       int
	batch      int
}

// invalidEvent is a usage error (exit 2) that reads as what it is.
type invalidEvent struct{ err error }

func (e invalidEvent) Error() string   { return "invalid event: " + e.err.Error() }
func (e invalidEvent) Unwrap() []error { return []error{e.err, errUsage} }

func runPublish(ctx context.Context, args []string) error {
	return publish(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

func publish(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := parsePublishFlags(args)
	if err != nil {
		return err
	}
	env, err := o.envelope(stdin)
	if err != nil {
		return err
	}
	rdb, err := o.redis.client(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	p := producer.New(rdb, producer.WithPrefix(o.redis.prefix), producer.WithPartitions(o.partitions))
	if o.count == 1 {
		id, err := p.PublishEnvelope(ctx, env)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, id)
		return err
	}
	return o.publishMany(ctx, p, env, stdout, progress.New(stderr, o.count, "events"))
}

func parsePublishFlags(args []string) (*publishFlags, error) {
	o := new(publishFlags)
	f := newFlags("publish", publishHelp)
	f.redis(&o.redis)
	f.Int(&o.partitions, "partitions", 0, "ingest partitions: fnv1a32(tenant) mod N picks the stream; must match the dispatcher (0 or 1: one stream)")
	f.String(&o.typ, "type", "", "event type, e.g. order.placed (required)")
	f.String(&o.tenant, "tenant", "", "tenant id (required)")
	f.String(&o.to, "to", "", "audience: user:<id>, users:<id>,<id>, tenant or topic:<name>; empty: the type's default audience")
	f.String(&o.data, "data", "", `event data, a JSON object; "-" reads stdin`)
	f.String(&o.id, "id", "", `idempotency key; with --count > 1 each event gets "<id>-<n>"`)
	f.String(&o.device, "device", "", "deliver only to this device of the user")
	f.Duration(&o.ttl, "ttl", 0, "expire the event after this long, whole seconds (0: never)")
	f.Int(&o.count, "count", 1, "number of events to publish")
	f.Int(&o.rate, "rate", 0, "events per second with --count (0: as fast as possible)")
	f.Int(&o.batch, "batch", 100, "events per pipelined round trip with --count")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	switch {
	case f.NArg() > 0:
		return nil, fmt.Errorf("%w: unexpected argument %q", errUsage, f.Arg(0))
	case o.count < 1:
		return nil, fmt.Errorf("%w: --count %d must be at least 1", errUsage, o.count)
	case o.batch < 1:
		return nil, fmt.Errorf("%w: --batch %d must be at least 1", errUsage, o.batch)
	case o.rate < 0:
		return nil, fmt.Errorf("%w: --rate %d must not be negative", errUsage, o.rate)
	case o.partitions < 0:
		return nil, fmt.Errorf("%w: --partitions %d must not be negative", errUsage, o.partitions)
	}
	return o, nil
}

// envelope builds the event from the flags and checks it against the
// contract before anything connects to Redis.
func (o *publishFlags) envelope(stdin io.Reader) (events.Envelope, error) {
	data := []byte(o.data)
	if o.data == "-" || (o.data == "" && !progress.IsTerminal(stdin)) {
		// One byte over the limit is enough for validation to say "too large".
		b, err := io.ReadAll(io.LimitReader(stdin, events.DefaultMaxData+1))
		if err != nil {
			return events.Envelope{}, fmt.Errorf("read data from stdin: %w", err)
		}
		data = bytes.TrimSpace(b)
	}
	env := events.Envelope{Type: o.typ, Tenant: o.tenant, Data: data, ID: o.id, Device: o.device, TTL: o.ttl}
	if o.ttl < 0 {
		return env, invalidEvent{&events.ValidationError{Field: events.FieldTTL, Problem: "must not be negative", Err: events.ErrInvalid}}
	}
	if o.to != "" {
		to, err := events.ParseAudience(o.to)
		if err != nil {
			return env, invalidEvent{err}
		}
		env.To = to
	}
	check := env
	if o.count > 1 && o.id != "" {
		check.ID = o.id + "-" + strconv.Itoa(o.count) // the longest key of the run
	}
	if err := check.Validate(); err != nil {
		return env, invalidEvent{err}
	}
	return env, nil
}

// publishMany publishes count copies of env in pipelined batches, paced to
// rate, until done or ctx is cancelled, and prints a summary.
func (o *publishFlags) publishMany(ctx context.Context, p *producer.Producer, env events.Envelope, stdout io.Writer, prog *progress.Bar) error {
	size := o.batch
	if o.rate > 0 {
		size = max(1, min(size, o.rate/20)) // at least 20 sends a second keeps the pace even
	}
	msgs := make([]producer.Message, 0, size)
	start := time.Now()
	done := 0
	var err error
	for done < o.count && err == nil {
		msgs = msgs[:0]
		for n := done + 1; n <= min(done+size, o.count); n++ {
			e := env
			if env.ID != "" {
				e.ID = env.ID + "-" + strconv.Itoa(n)
			}
			msgs = append(msgs, producer.Envelope(e))
		}
		var ids []string
		ids, err = p.PublishBatch(ctx, msgs)
		for _, id := range ids {
			if id != "" {
				done++
			}
		}
		prog.Update(done)
		if o.rate > 0 && err == nil {
			// done events are due by start + done/rate: wait for that.
			due := start.Add(time.Duration(float64(done) / float64(o.rate) * float64(time.Second)))
			err = sleepUntil(ctx, due)
		}
	}
	prog.Finish(done)
	elapsed := time.Since(start)
	interrupted := ctx.Err() != nil && errors.Is(err, ctx.Err())
	summary := fmt.Sprintf("published %d in %s (%.0f/s)", done, elapsed.Round(time.Millisecond), progress.PerSecond(done, elapsed))
	if interrupted {
		summary += fmt.Sprintf(", interrupted: %d not sent", o.count-done)
	}
	fmt.Fprintln(stdout, summary)
	if interrupted {
		return nil // Ctrl-C is a clean stop
	}
	return err
}

// sleepUntil waits until t or until ctx is done.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
