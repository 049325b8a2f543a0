package dispatcher

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fields a dead-letter entry adds to the fields of the original entry.
const (
	FieldReason       = "reason"        // why it was dead-lettered, naming the field when one was wrong
	FieldSourceStream = "source_stream" // the ingest stream it came from
	FieldSourceID     = "source_id"     // its entry id there
	FieldFailedAt     = "failed_at"     // unix ms when it was dead-lettered
	FieldDeliveries   = "deliveries"    // times it was delivered to a dispatcher, none successful
)

// origPrefix marks an original field whose name is one of the fields above
// (or already starts with the prefix): such an entry broke the contract
// anyway, and the prefix keeps both the original and the reason.
const origPrefix = "orig."

func isMetaField(name string) bool {
	switch name {
	case FieldReason, FieldSourceStream, FieldSourceID, FieldFailedAt, FieldDeliveries:
		return true
	}
	return false
}

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	ID           string            // its id in the dead-letter stream
	Fields       map[string]string // the original entry's fields, as published
	Reason       string
	SourceStream string
	SourceID     string
	FailedAt     time.Time
	Deliveries   int64
}

// deadLetter is what the worker writes for one failed ingest entry.
type deadLetter struct {
	values     map[string]any // the original fields
	reason     string
	kind       string // reasonMalformed or reasonDeliveries, the metric label
	sourceID   string
	deliveries int64
}

// xaddValues returns the dead letter's fields for XADD: the original fields
// in a stable order, then the dead-letter fields.
func (dl *deadLetter) xaddValues(stream string, now time.Time) []any {
	names := make([]string, 0, len(dl.values))
	for k := range dl.values {
		names = append(names, k)
	}
	sort.Strings(names)
	v := make([]any, 0, 2*len(names)+10)
	for _, k := range names {
		v = append(v, encodeName(k), fmt.Sprint(dl.values[k]))
	}
	return append(v,
		FieldReason, dl.reason,
		FieldSourceStream, stream,
		FieldSourceID, dl.sourceID,
		FieldFailedAt, strconv.FormatInt(now.UnixMilli(), 10),
		FieldDeliveries, strconv.FormatInt(dl.deliveries, 10),
	)
}

func encodeName(name string) string {
	if isMetaField(name) || strings.HasPrefix(name, origPrefix) {
		return origPrefix + name
	}
	return name
}

// parseDeadLetter reads a dead-letter stream entry back.
func parseDeadLetter(id string, values map[string]any) DeadLetter {
	dl := DeadLetter{ID: id, Fields: make(map[string]string, len(values))}
	for k, raw := range values {
		v := fmt.Sprint(raw)
		switch {
		case k == FieldReason:
			dl.Reason = v
		case k == FieldSourceStream:
			dl.SourceStream = v
		case k == FieldSourceID:
			dl.SourceID = v
		case k == FieldFailedAt:
			ms, _ := strconv.ParseInt(v, 10, 64)
			dl.FailedAt = time.UnixMilli(ms)
		case k == FieldDeliveries:
			dl.Deliveries, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(k, origPrefix):
			dl.Fields[k[len(origPrefix):]] = v
		default:
			dl.Fields[k] = v
		}
	}
	return dl
}
