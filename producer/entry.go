package producer

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldrt/herald/events"
	"github.com/redis/go-redis/v9"
)

// entry is one validated message, ready to send as one XADD.
type entry struct {
	typ    string
	stream string
	args   []any // the whole XADD command
}

// sendState is what the messages of one publish call share: the time, the
// retention arguments and scratch space for validation.
type sendState struct {
	now       time.Time
	nowTS     any   // now as the ts field's value, most entries' ts
	retention []any // MAXLEN ~ n, MINID ~ id, or nothing
	fields    map[string]string

	// Batches usually repeat one type and one tenant: the last ones seen,
	// boxed as command arguments once.
	typ, tenant       string
	typArg, tenantArg any
}

// boxed returns s as a command argument, reusing *arg when *last is s.
func boxed(s string, last *string, arg *any) any {
	if *arg == nil || *last != s {
		*last, *arg = s, s
	}
	return *arg
}

func (p *Producer) newSendState() *sendState {
	now := p.now()
	s := &sendState{now: now, nowTS: strconv.FormatInt(now.UnixMilli(), 10), fields: make(map[string]string, 8)}
	switch {
	case p.maxLen > 0:
		s.retention = []any{"maxlen", "~", p.maxLenArg}
	case p.minIDAge > 0:
		s.retention = []any{"minid", "~", strconv.FormatInt(s.now.Add(-p.minIDAge).UnixMilli(), 10) + "-0"}
	}
	return s
}

// prepare builds, encodes and validates one message.
func (p *Producer) prepare(m Message, s *sendState) (entry, error) {
	env, trusted, err := p.envelope(m, s.now)
	if err != nil {
		return entry{}, err
	}
	if err := precheck(env); err != nil {
		return entry{}, err
	}
	i := p.partition(env.Tenant)
	args := s.encode(env, p.streamArgs[i])
	to, err := p.validate(env, args[3+len(s.retention):], trusted, s.fields)
	if err != nil {
		return entry{}, err
	}
	if env.To.Kind == 0 {
		// A raw envelope left "to" to its type's default audience, which
		// validation found: write it out, so the entry names its audience.
		env.To = to
		args = s.encode(env, p.streamArgs[i])
	}
	return entry{typ: env.Type, stream: p.streams[i], args: args}, nil
}

// precheck refuses what the wire encoding would drop silently or garble.
func precheck(env events.Envelope) error {
	if env.TTL < 0 {
		return &events.ValidationError{Field: events.FieldTTL, Problem: "must not be negative", Err: events.ErrInvalid}
	}
	bad, found := "", false
	for k := range env.Ext {
		if !strings.HasPrefix(k, events.ExtensionPrefix) && (!found || k < bad) {
			bad, found = k, true // the first in byte order: the same error every time
		}
	}
	if found {
		return &events.ValidationError{Field: bad, Problem: "is not an extension field (they start with x-)", Err: events.ErrUnknown}
	}
	return nil
}

// encode is the XADD command of an entry: XADD <stream> [MAXLEN ~ n | MINID
// ~ id] * field value ... The fields are those of events.Envelope.Values, in
// its order (a test holds the two together), with data as bytes, uncopied.
func (s *sendState) encode(env events.Envelope, stream any) []any {
	args := make([]any, 0, 3+len(s.retention)+16+2*len(env.Ext))
	args = append(args, "xadd", stream)
	args = append(args, s.retention...)
	args = append(args, "*",
		events.FieldType, boxed(env.Type, &s.typ, &s.typArg),
		events.FieldTenant, boxed(env.Tenant, &s.tenant, &s.tenantArg),
		events.FieldTo, env.To.String(),
		events.FieldData, []byte(env.Data))
	if env.ID != "" {
		args = append(args, events.FieldID, env.ID)
	}
	if env.Device != "" {
		args = append(args, events.FieldDevice, env.Device)
	}
	if env.TTL > 0 {
		secs := int64((env.TTL + time.Second - 1) / time.Second) // rounded up, as Values does
		args = append(args, events.FieldTTL, strconv.FormatInt(secs, 10))
	}
	switch {
	case env.TS == s.now.UnixMilli():
		args = append(args, events.FieldTS, s.nowTS)
	case env.TS != 0:
		args = append(args, events.FieldTS, strconv.FormatInt(env.TS, 10))
	}
	for k, v := range env.Ext {
		args = append(args, k, v)
	}
	return args
}

// validate checks the fields exactly as they will be sent (vals: name,
// value, ...) with the dispatcher's parser, events.Limits.Parse (which
// Limits.Validate also uses), and returns the audience it found. Data
// encoded by encoding/json (trusted) is valid JSON already: only its size
// and shape are checked, and it is not parsed a second time.
func (p *Producer) validate(env events.Envelope, vals []any, trusted bool, fields map[string]string) (events.Audience, error) {
	clear(fields)
	for i := 0; i+1 < len(vals); i += 2 {
		switch v := vals[i+1].(type) {
		case string:
			fields[vals[i].(string)] = v
		case []byte: // data
			if !trusted {
				fields[vals[i].(string)] = string(v)
			}
		}
	}
	if fields[events.FieldTo] == "" {
		if env.To.Kind != 0 {
			return events.Audience{}, env.To.Validate() // set, but malformed: "audience is empty"
		}
		delete(fields, events.FieldTo) // absent: Parse looks for a default audience
	}
	if trusted {
		if err := p.checkEncoded(env.Data); err != nil {
			return events.Audience{}, err
		}
		fields[events.FieldData] = "{}" // checked above
	}
	parsed, err := p.limits.Parse(fields)
	return parsed.To, err
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
	if !utf8.Valid(data) { // a json.RawMessage field passes through Marshal as it is
		return &events.ValidationError{Field: events.FieldData, Problem: "must be valid UTF-8", Err: events.ErrInvalid}
	}
	return nil
}

// cmd is the go-redis command of an entry.
func (e entry) cmd(ctx context.Context) *redis.StringCmd {
	return redis.NewStringCmd(ctx, e.args...)
}
