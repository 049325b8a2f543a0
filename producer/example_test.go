package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
	"github.com/redis/go-redis/v9"
)

// Publish a typed event to its default audience (the buyer), with an
// idempotency key from the domain so that a retry cannot deliver it twice.
// It needs a Redis server, so it is compiled but not run.
func ExampleProducer_Publish() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	p := producer.New(rdb, producer.WithTenant("acme"))

	ev := &events.OrderPlacedEvent{OrderID: "o-1001", BuyerID: "42", TotalCents: 4200, Currency: "EUR"}
	id, err := p.Publish(ctx, ev,
		producer.IdempotencyKey("order-o-1001-placed"),
		producer.TTL(24*time.Hour))
	var ve *events.ValidationError
	switch {
	case errors.As(err, &ve):
		log.Fatalf("not a valid event, field %s: %s", ve.Field, ve.Problem)
	case err != nil:
		log.Fatal(err) // Redis failed; publishing again is safe thanks to the key
	}
	fmt.Println("stored as", id)
}

// Publish many events in one round trip: typed ones with their options and
// a raw one for a type that has no Go struct.
func ExampleProducer_PublishBatch() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithPartitions(8))

	ids, err := p.PublishBatch(ctx, []producer.Message{
		producer.Event(&events.OrderShippedEvent{OrderID: "o-1001", BuyerID: "42", Carrier: "DHL"},
			producer.IdempotencyKey("order-o-1001-shipped"), producer.Device("phone")),
		producer.Event(&events.PromotionEvent{Campaign: "bf", Title: "Black Friday"},
			producer.To(events.ToTopic("deals"))),
		producer.Envelope(events.Envelope{Type: "chat.message", To: events.ToUsers("42", "43"),
			Data: json.RawMessage(`{"text":"hello"}`)}),
	})
	var be *producer.BatchError
	if errors.As(err, &be) {
		log.Fatalf("message %d: %v", be.Index, be.Err)
	}
	fmt.Println(ids)
}
