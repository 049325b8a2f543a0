package producer

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/redis/go-redis/v9"
)

// entry is one validated message, ready to send as one XADD.
type entry struct {
	typ    string
	stream string
	args   []any // the whole XADD command
}

// prepare builds, validates and encodes one message. fields is scratch
// space for validation, reused across a batch.
func (p *Producer) prepare(m Message, now time.Time, fields map[string]string) (entry, error) {
	env, trusted, err := p.envelope(m, now)
	if err != nil {
		return entry{}, err
	}
	vals := env.Values()
	if err := p.validate(env, vals, trusted, fields); err != nil {
		return entry{}, err
	}
	if env.To.Kind == 0 {
		// A raw envelope left "to" to its type's default audience, which
		// validation found: write it out, so the entry names its audience.
		env.To, _ = events.DefaultAudience(env.Type, env.Data)
		vals = env.Values()
	}
	stream := p.stream(env.Tenant)
	return entry{typ: env.Type, stream: stream, args: p.xadd(stream, vals, now)}, nil
}

// validate checks the fields exactly as they will be sent, with the
// dispatcher's parser (events.Limits.Parse, which Limits.Validate also
// uses), plus what Envelope.Values would drop silently. Data encoded by
// encoding/json (trusted) is valid JSON already: only its size and shape
// are checked, and it is not parsed a second time.
func (p *Producer) validate(env events.Envelope, vals []any, trusted bool, fields map[string]string) error {
	if env.TTL < 0 {
		return &events.ValidationError{Field: events.FieldTTL, Problem: "must not be negative", Err: events.ErrInvalid}
	}
	for k := range env.Ext {
		if !strings.HasPrefix(k, events.ExtensionPrefix) {
			return &events.ValidationError{Field: k, Problem: "is not an extension field (they start with x-)", Err: events.ErrUnknown}
		}
	}
	clear(fields)
	for i := 0; i+1 < len(vals); i += 2 {
		fields[vals[i].(string)] = vals[i+1].(string)
	}
	if fields[events.FieldTo] == "" {
		if env.To.Kind != 0 {
			return env.To.Validate() // set, but malformed: "audience is empty"
		}
		delete(fields, events.FieldTo) // absent: Parse looks for a default audience
	}
	if trusted {
		if err := p.checkEncoded(env.Data); err != nil {
			return err
		}
		fields[events.FieldData] = "{}" // checked above
	}
	_, err := p.limits.Parse(fields)
	return err
}

// checkEncoded is Parse's check of the data field for output of
// json.Marshal: valid JSON with no leading space.
func (p *Producer) checkEncoded(data []byte) error {
	limit := p.limits.MaxData
	if limit <= 0 {
		limit = events.DefaultMaxData
	}
	if len(data) > limit {
		return &events.ValidationError{Field: events.FieldData, Err: events.ErrTooLarge,
			Problem: "is " + strconv.Itoa(len(data)) + " bytes, more than the limit of " + strconv.Itoa(limit)}
	}
	if len(data) == 0 || data[0] != '{' {
		return &events.ValidationError{Field: events.FieldData, Problem: "must be a JSON object", Err: events.ErrInvalid}
	}
	return nil
}

// stream is the ingest stream of a tenant.
func (p *Producer) stream(tenant string) string {
	return p.space.IngestStream(tenant, p.partitions)
}

// xadd is the XADD command for one entry's fields, with the retention
// option: XADD <stream> [MAXLEN ~ n | MINID ~ id] * field value ...
func (p *Producer) xadd(stream string, vals []any, now time.Time) []any {
	args := make([]any, 0, 6+len(vals))
	args = append(args, "xadd", stream)
	switch {
	case p.maxLen > 0:
		args = append(args, "maxlen", "~", p.maxLen)
	case p.minIDAge > 0:
		args = append(args, "minid", "~", strconv.FormatInt(now.Add(-p.minIDAge).UnixMilli(), 10)+"-0")
	}
	args = append(args, "*")
	return append(args, vals...)
}

// cmd is the go-redis command of an entry.
func (e entry) cmd(ctx context.Context) *redis.StringCmd {
	return redis.NewStringCmd(ctx, e.args...)
}
