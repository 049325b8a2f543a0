package events

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Field names of an ingest stream entry (contracts section 1).
const (
	FieldType   = "type"
	FieldTenant = "tenant"
	FieldTo     = "to"
	FieldData   = "data"
	FieldID     = "id"
	FieldDevice = "device"
	FieldTTL    = "ttl"
	FieldTS     = "ts"
)

// ExtensionPrefix marks fields a producer may add for its own use (tracing
// ids, for example). They are kept and ignored; any other unknown field is
// refused.
const ExtensionPrefix = "x-"

// DefaultMaxData is the default limit on the size of the data field.
const DefaultMaxData = 64 << 10

// MaxTTL is the longest ttl an entry may ask for (30 days).
const MaxTTL = 30 * 24 * time.Hour

// Envelope is one ingest stream entry.
type Envelope struct {
	Type   string          // event type, e.g. "order.placed"
	Tenant string          // tenant id
	To     Audience        // who it is for
	Data   json.RawMessage // a JSON object
	ID     string          // idempotency key; "" = none
	Device string          // deliver only to this device of the user; "" = all
	TTL    time.Duration   // 0 = no expiry; whole seconds on the wire
	TS     int64           // producer time, unix ms; 0 = not given
	Ext    map[string]string
}

// Limits bound what Parse accepts. The zero value means the defaults.
type Limits struct {
	MaxData int // bytes in data; 0 means DefaultMaxData
}

func (l Limits) maxData() int {
	if l.MaxData <= 0 {
		return DefaultMaxData
	}
	return l.MaxData
}

// Parse reads a stream entry strictly with the default limits.
func Parse(fields map[string]string) (Envelope, error) {
	return Limits{}.Parse(fields)
}

// ParseValues reads a go-redis XMessage.Values map.
func ParseValues(values map[string]any) (Envelope, error) {
	return Limits{}.ParseValues(values)
}

// ParseValues is Parse for a go-redis XMessage.Values map.
func (l Limits) ParseValues(values map[string]any) (Envelope, error) {
	fields := make(map[string]string, len(values))
	for k, v := range values {
		s, ok := v.(string)
		if !ok {
			return Envelope{}, invalid(k, "value is not a string")
		}
		fields[k] = s
	}
	return l.Parse(fields)
}

// Parse reads a stream entry. The first contract violation found is
// returned as a *ValidationError; fields are checked in a fixed order so
// the same entry always gives the same error.
func (l Limits) Parse(fields map[string]string) (Envelope, error) {
	var e Envelope
	if err := e.parseRequired(fields, l); err != nil {
		return Envelope{}, err
	}
	if err := e.parseOptional(fields); err != nil {
		return Envelope{}, err
	}
	if err := e.parseExtensions(fields); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func (e *Envelope) parseRequired(f map[string]string, l Limits) error {
	var err error
	if e.Type, err = parseType(f[FieldType]); err != nil {
		return err
	}
	if e.Tenant, err = parseTenant(f[FieldTenant]); err != nil {
		return err
	}
	if e.Data, err = parseData(f[FieldData], l.maxData()); err != nil {
		return err
	}
	to, ok := f[FieldTo]
	if !ok || to == "" {
		a, found := DefaultAudience(e.Type, e.Data)
		if !found {
			return missing(FieldTo)
		}
		e.To = a
		return nil
	}
	e.To, err = ParseAudience(to)
	return err
}

func parseType(s string) (string, error) {
	if s == "" {
		return "", missing(FieldType)
	}
	if !ValidType(s) {
		return "", invalid(FieldType, "%q must match [a-z0-9_.-]{1,64}", clip(s))
	}
	return s, nil
}

func parseTenant(s string) (string, error) {
	if s == "" {
		return "", missing(FieldTenant)
	}
	if !ValidTenant(s) {
		return "", invalid(FieldTenant, "%q must match [A-Za-z0-9_-]{1,64}", clip(s))
	}
	return s, nil
}

func parseData(s string, max int) (json.RawMessage, error) {
	if s == "" {
		return nil, missing(FieldData)
	}
	if len(s) > max {
		return nil, &ValidationError{Field: FieldData, Problem: "is " + strconv.Itoa(len(s)) + " bytes, more than the limit of " + strconv.Itoa(max), Err: ErrTooLarge}
	}
	t := strings.TrimLeft(s, " \t\r\n")
	if t == "" || t[0] != '{' || !json.Valid([]byte(s)) {
		return nil, invalid(FieldData, "must be a JSON object")
	}
	// json.Valid lets invalid UTF-8 through inside strings. JSON text is
	// UTF-8 (RFC 8259), and it goes to clients in WebSocket text frames,
	// which a browser fails with 1007: the notification would be replayed
	// and fail the connection again on every reconnect.
	if !utf8.ValidString(s) {
		return nil, invalid(FieldData, "must be valid UTF-8")
	}
	return json.RawMessage(s), nil
}

func (e *Envelope) parseOptional(f map[string]string) error {
	if v, ok := f[FieldID]; ok {
		if !ValidIdempotencyKey(v) {
			return invalid(FieldID, "idempotency key must be 1 to 128 printable characters without spaces")
		}
		e.ID = v
	}
	if v, ok := f[FieldDevice]; ok {
		if !ValidID(v) {
			return invalid(FieldDevice, "%q must match [A-Za-z0-9_.@-]{1,128}", clip(v))
		}
		if e.To.Kind != AudienceUser && e.To.Kind != AudienceUsers {
			return invalid(FieldDevice, "only user audiences can target a device")
		}
		e.Device = v
	}
	if v, ok := f[FieldTTL]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n > int64(MaxTTL/time.Second) { // compare seconds: n*time.Second can overflow
			return invalid(FieldTTL, "%q must be whole seconds between 1 and %d", clip(v), int64(MaxTTL/time.Second))
		}
		e.TTL = time.Duration(n) * time.Second
	}
	if v, ok := f[FieldTS]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return invalid(FieldTS, "%q must be unix milliseconds", clip(v))
		}
		e.TS = n
	}
	return nil
}

// parseExtensions keeps the x- fields. Of several unknown fields it names
// the first in byte order, so that the error does not depend on map order.
func (e *Envelope) parseExtensions(f map[string]string) error {
	unknown, found := "", false
	for k, v := range f {
		switch k {
		case FieldType, FieldTenant, FieldTo, FieldData, FieldID, FieldDevice, FieldTTL, FieldTS:
			continue
		}
		if !strings.HasPrefix(k, ExtensionPrefix) {
			if !found || k < unknown {
				unknown, found = k, true
			}
			continue
		}
		if e.Ext == nil {
			e.Ext = make(map[string]string)
		}
		e.Ext[k] = v
	}
	if found {
		e.Ext = nil
		return &ValidationError{Field: unknown, Problem: "is not a field of the contract (use the x- prefix for your own)", Err: ErrUnknown}
	}
	return nil
}

// Validate checks an envelope built in code with the given limits, as Parse
// would check it on the wire. It also refuses what Values cannot write
// faithfully: an Ext key without the x- prefix (a contract field would be
// written twice) and a negative TTL (Values would drop it).
func (l Limits) Validate(e Envelope) error {
	if e.TTL < 0 {
		return invalid(FieldTTL, "must not be negative")
	}
	if k, ok := firstNonExtension(e.Ext); ok {
		return &ValidationError{Field: k, Problem: "is not an extension field (they start with x-)", Err: ErrUnknown}
	}
	_, err := l.Parse(e.fieldMap())
	return err
}

// firstNonExtension is the first key of ext in byte order without the x-
// prefix, if any.
func firstNonExtension(ext map[string]string) (first string, found bool) {
	for k := range ext {
		if !strings.HasPrefix(k, ExtensionPrefix) && (!found || k < first) {
			first, found = k, true
		}
	}
	return first, found
}

// Validate checks an envelope with the default limits.
func (e Envelope) Validate() error { return Limits{}.Validate(e) }

// Values returns the entry's fields as alternating names and values, in a
// stable order, ready for XADD.
func (e Envelope) Values() []any {
	v := make([]any, 0, 16+2*len(e.Ext))
	v = append(v, FieldType, e.Type, FieldTenant, e.Tenant, FieldTo, e.To.String(), FieldData, string(e.Data))
	if e.ID != "" {
		v = append(v, FieldID, e.ID)
	}
	if e.Device != "" {
		v = append(v, FieldDevice, e.Device)
	}
	if e.TTL > 0 {
		v = append(v, FieldTTL, strconv.FormatInt(ttlSeconds(e.TTL), 10))
	}
	if e.TS != 0 {
		v = append(v, FieldTS, strconv.FormatInt(e.TS, 10))
	}
	for k, x := range e.Ext {
		v = append(v, k, x)
	}
	return v
}

// fieldMap is Values as a map, with an absent "to" left out.
func (e Envelope) fieldMap() map[string]string {
	vals := e.Values()
	m := make(map[string]string, len(vals)/2)
	for i := 0; i+1 < len(vals); i += 2 {
		m[vals[i].(string)] = vals[i+1].(string)
	}
	if m[FieldTo] == "" {
		delete(m, FieldTo)
	}
	return m
}

// ttlSeconds rounds a TTL up to whole seconds, so 1ms means 1s, not 0.
func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}
