package producer_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/producer"
)

// valueEvent implements Event with a value receiver: a nil *valueEvent
// cannot have its EventType called.
type valueEvent struct {
	N int `json:"n"`
}

func (valueEvent) EventType() string { return "value.event" }

// A typed nil pointer is ErrNilEvent, whatever the receiver of EventType.
func TestTypedNilWithValueReceiver(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	var ev *valueEvent
	publish := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		_, err = p.Publish(t.Context(), ev, producer.To(events.ToTenant()))
		return err
	}
	if err := publish(); !errors.Is(err, producer.ErrNilEvent) {
		t.Fatalf("Publish(nil *valueEvent) = %v, want ErrNilEvent", err)
	}
	batch := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		_, err = p.PublishBatch(t.Context(), []producer.Message{producer.Event(ev, producer.To(events.ToTenant()))})
		return err
	}
	var be *producer.BatchError
	if err := batch(); !errors.Is(err, producer.ErrNilEvent) || !errors.As(err, &be) || be.Index != 0 {
		t.Fatalf("PublishBatch(nil *valueEvent) = %v, want a BatchError wrapping ErrNilEvent", err)
	}
}

// When one partition's XADDs fail, the others are stored and reported, the
// failed ones are "" and the error names the first failed message.
func TestBatchPartialFailurePerMessage(t *testing.T) {
	_, rdb := setup(t)
	ctx := t.Context()
	p := producer.New(rdb, producer.WithPartitions(8))
	// acme -> 7, globex -> 6, initech -> 1 (docs/producers.md)
	sp := keys.Space{}
	if err := rdb.Set(ctx, sp.IngestStream("globex", 8), "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	tenants := []string{"acme", "globex", "initech", "globex", "acme"}
	msgs := make([]producer.Message, len(tenants))
	for i, tn := range tenants {
		msgs[i] = producer.Event(order(fmt.Sprint(i), "42"), producer.Tenant(tn))
	}
	ids, err := p.PublishBatch(ctx, msgs)
	var be *producer.BatchError
	if !errors.As(err, &be) || be.Index != 1 || be.Stream != "herald:events:{6}" {
		t.Fatalf("err = %v, want a BatchError for message 1 on herald:events:{6}", err)
	}
	stored7, _ := readAll(t, rdb, "herald:events:{7}")
	stored1, _ := readAll(t, rdb, "herald:events:{1}")
	want := []string{stored7[0], "", stored1[0], "", stored7[1]}
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %q, want %q", ids, want)
	}
}

// The same bad envelope always gives the same error.
func TestBadExtensionsNamedDeterministically(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	env := events.Envelope{Type: "chat.message", To: events.ToTenant(), Data: []byte(`{}`),
		Ext: map[string]string{"zeta": "v", "alpha": "v", "mid": "v", "kappa": "v", "x-ok": "1"}}
	for range 100 {
		_, err := p.PublishEnvelope(t.Context(), env)
		if got := events.FieldOf(err); got != "alpha" {
			t.Fatalf("error names field %q, want %q: %v", got, "alpha", err)
		}
	}
}
