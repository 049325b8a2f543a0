package events

import (
	"encoding/json"
	"fmt"
	"sync"
)

// Event is a typed domain event: its data is the JSON encoding of the value.
type Event interface {
	EventType() string
}

// Addressed is implemented by events that know their natural audience (an
// order's buyer). An explicit "to" on the entry always wins.
type Addressed interface {
	Event
	DefaultAudience() (Audience, bool)
}

var registry sync.Map // type name -> func() Event

// Register makes an event type known by its type name, so [Decode] and
// [DefaultAudience] can use it. newEvent returns a new zero value pointer.
// Registering a name twice panics: two owners of one name is a programming
// error.
func Register(newEvent func() Event) {
	name := newEvent().EventType()
	if !ValidType(name) {
		panic(fmt.Sprintf("events: register %q: not a valid event type", name))
	}
	if _, dup := registry.LoadOrStore(name, newEvent); dup {
		panic(fmt.Sprintf("events: register %q: already registered", name))
	}
}

// Registered reports whether an event type has a Go type.
func Registered(typ string) bool {
	_, ok := registry.Load(typ)
	return ok
}

// Decode returns the typed event of an envelope. For an unregistered type it
// returns ErrUnknown (the envelope itself may still be valid: Herald delivers
// events it has no Go type for).
func Decode(e Envelope) (Event, error) {
	return decode(e.Type, e.Data)
}

func decode(typ string, data []byte) (Event, error) {
	f, ok := registry.Load(typ)
	if !ok {
		return nil, fmt.Errorf("decode event %q: %w", typ, ErrUnknown)
	}
	ev := f.(func() Event)()
	if err := json.Unmarshal(data, ev); err != nil {
		return nil, invalid(FieldData, "does not decode as %s: %v", typ, err)
	}
	return ev, nil
}

// DefaultAudience returns the audience a registered event type gives itself
// from its data, if any.
func DefaultAudience(typ string, data []byte) (Audience, bool) {
	ev, err := decode(typ, data)
	if err != nil {
		return Audience{}, false
	}
	ad, ok := ev.(Addressed)
	if !ok {
		return Audience{}, false
	}
	a, ok := ad.DefaultAudience()
	if !ok || a.Validate() != nil {
		return Audience{}, false
	}
	return a, true
}
