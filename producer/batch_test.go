package producer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
)

func TestBatchKeepsOrder(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	const n = 250
	msgs := make([]producer.Message, n)
	for i := range msgs {
		if i%3 == 0 {
			msgs[i] = producer.Envelope(events.Envelope{Type: "chat.message", To: events.ToTopic("room"),
				Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			continue
		}
		msgs[i] = producer.Event(order(fmt.Sprint(i), "42"), producer.IdempotencyKey(fmt.Sprintf("k-%d", i)))
	}
	ids, err := p.PublishBatch(t.Context(), msgs)
	if err != nil {
		t.Fatal(err)
	}
	stored, envs := readAll(t, rdb, "herald:events")
	if len(stored) != n || len(ids) != n {
		t.Fatalf("%d ids returned, %d entries stored, want %d", len(ids), len(stored), n)
	}
	for i := range n {
		if ids[i] != stored[i] {
			t.Fatalf("id %d = %s, stream has %s", i, ids[i], stored[i])
		}
		var want string
		if i%3 == 0 {
			want = fmt.Sprintf(`{"n":%d}`, i)
		} else {
			want = string(mustJSON(t, order(fmt.Sprint(i), "42")))
		}
		if string(envs[i].Data) != want {
			t.Fatalf("entry %d holds %s, want %s", i, envs[i].Data, want)
		}
	}
}

func TestBatchWithOneInvalidSendsNothing(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithPartitions(4))
	msgs := make([]producer.Message, 10)
	for i := range msgs {
		msgs[i] = producer.Event(order(fmt.Sprint(i), "42"), producer.Tenant(fmt.Sprintf("t%d", i)))
	}
	msgs[7] = producer.Event(order("7", "42"), producer.Device("my phone"))
	ids, err := p.PublishBatch(t.Context(), msgs)
	var be *producer.BatchError
	if !errors.As(err, &be) || be.Index != 7 || events.FieldOf(err) != "device" || ids != nil {
		t.Fatalf("PublishBatch = %v, %v; want a BatchError at index 7 naming device", ids, err)
	}
	if !strings.HasPrefix(err.Error(), `publish batch: message 7 (order.placed): field "device"`) {
		t.Fatalf("message %q", err)
	}
	if keys := rdb.Keys(t.Context(), "*").Val(); len(keys) != 0 {
		t.Fatalf("a refused batch wrote %v", keys)
	}
	_, err = p.PublishBatch(t.Context(), []producer.Message{msgs[0], {}})
	if !errors.As(err, &be) || be.Index != 1 || !errors.Is(err, producer.ErrEmptyMessage) {
		t.Fatalf("zero Message: err = %v", err)
	}
}

func TestEmptyBatch(t *testing.T) {
	_, rdb := setup(t)
	ids, err := producer.New(rdb).PublishBatch(t.Context(), nil)
	if ids != nil || err != nil {
		t.Fatalf("empty batch = %v, %v", ids, err)
	}
}
