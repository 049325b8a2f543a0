package producer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/heraldrt/herald/events"
)

// Message is one entry of a batch for PublishBatch: a typed event with its
// publish options ([Event]) or a raw envelope ([Envelope]). The zero
// Message is refused with ErrEmptyMessage.
type Message struct {
	event events.Event
	opts  []PublishOption
	env   events.Envelope
	kind  uint8 // 0: zero Message, typedMessage or rawMessage
}

const (
	typedMessage = 1 + iota
	rawMessage
)

// Event is the batch message that Publish(ctx, ev, opts...) would send.
func Event(ev events.Event, opts ...PublishOption) Message {
	return Message{event: ev, opts: opts, kind: typedMessage}
}

// Envelope is the batch message that PublishEnvelope(ctx, env) would send.
func Envelope(env events.Envelope) Message { return Message{env: env, kind: rawMessage} }

// typeName names the message in errors, before it is validated. A nil
// event has no name: EventType with a value receiver panics on a nil
// pointer.
func (m Message) typeName() string {
	switch {
	case m.kind == rawMessage:
		return m.env.Type
	case !isNil(m.event):
		return m.event.EventType()
	}
	return ""
}

// isNil reports whether ev is nil or a typed nil pointer.
func isNil(ev events.Event) bool {
	if ev == nil {
		return true
	}
	v := reflect.ValueOf(ev)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// envelope builds the message's entry with the producer's defaults filled
// in. trusted says its data came from encoding/json, which only writes
// valid JSON.
func (p *Producer) envelope(m Message, now time.Time) (env events.Envelope, trusted bool, err error) {
	switch m.kind {
	case rawMessage:
		env = m.env
		env.Tenant = cmp.Or(env.Tenant, p.tenant)
		if env.TS == 0 {
			env.TS = now.UnixMilli()
		}
		return env, false, nil
	case typedMessage:
		env, err = p.eventEnvelope(m.event, m.opts, now)
		return env, true, err
	}
	return events.Envelope{}, false, ErrEmptyMessage
}

// eventEnvelope builds the entry of a typed event.
func (p *Producer) eventEnvelope(ev events.Event, opts []PublishOption, now time.Time) (events.Envelope, error) {
	if isNil(ev) {
		return events.Envelope{}, ErrNilEvent
	}
	var o publishOptions
	for _, opt := range opts {
		opt(&o)
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return events.Envelope{}, fmt.Errorf("encode data: %w", err)
	}
	if bytes.Equal(data, []byte("null")) {
		return events.Envelope{}, ErrNilEvent // a typed nil pointer
	}
	env := events.Envelope{
		Type:   ev.EventType(),
		Tenant: cmp.Or(o.tenant, p.tenant),
		Data:   data,
		ID:     o.id,
		Device: o.device,
		TTL:    o.ttl,
		TS:     unixMilli(o.at, now),
	}
	if env.To, err = audience(ev, o); err != nil {
		return events.Envelope{}, err
	}
	return env, nil
}

// audience is the explicit To, else the event's default audience.
func audience(ev events.Event, o publishOptions) (events.Audience, error) {
	if o.toSet {
		if o.to.Kind == 0 {
			return events.Audience{}, o.to.Validate() // "audience is empty"
		}
		return o.to, nil
	}
	if ad, ok := ev.(events.Addressed); ok {
		if a, ok := ad.DefaultAudience(); ok {
			return a, nil
		}
	}
	return events.Audience{}, &events.ValidationError{
		Field:   events.FieldTo,
		Problem: "is required: " + ev.EventType() + " gives no default audience, pass producer.To(...)",
		Err:     events.ErrMissing,
	}
}

func unixMilli(at, now time.Time) int64 {
	if at.IsZero() {
		return now.UnixMilli()
	}
	return at.UnixMilli()
}
