package producer_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/producer"
	"github.com/redis/go-redis/v9"
)

// The benchmarks share one redis-server, started by the first of them and
// stopped by TestMain, so that they compare the client side on equal terms.
// Every one of them trims its stream to benchMaxLen so memory stays flat.
const (
	benchBatch  = 100
	benchMaxLen = 100_000
)

var bench struct {
	once sync.Once
	srv  *redistest.Server
	rdb  *redis.Client
	err  error
}

func benchClient(b *testing.B) *redis.Client {
	b.Helper()
	bench.once.Do(func() {
		bench.srv, bench.err = redistest.Launch(context.Background(), redistest.Config{})
		if bench.err == nil {
			bench.rdb = redis.NewClient(&redis.Options{Addr: bench.srv.Addr()})
		}
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.rdb
}

func closeBenchServer() error {
	if bench.srv == nil {
		return nil
	}
	bench.rdb.Close()
	return bench.srv.Close()
}

func benchEvent() *events.OrderPlacedEvent {
	return &events.OrderPlacedEvent{OrderID: "o-1001", BuyerID: "42", TotalCents: 4200, Currency: "EUR",
		Items: []events.LineItem{{SKU: "sku-1", Name: "Mug", Quantity: 2, Cents: 2100}}}
}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkPublish: one event per round trip. One op is one event.
func BenchmarkPublish(b *testing.B) {
	rdb := benchClient(b)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithPrefix("bench-publish:"), producer.WithMaxLen(benchMaxLen))
	ev, ctx := benchEvent(), b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkPublishBatch: PublishBatch of 100 typed events (encoded,
// validated, pipelined). One op is one batch.
func BenchmarkPublishBatch(b *testing.B) {
	rdb := benchClient(b)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithPrefix("bench-batch:"), producer.WithMaxLen(benchMaxLen))
	msgs := make([]producer.Message, benchBatch)
	for i := range msgs {
		msgs[i] = producer.Event(benchEvent())
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.PublishBatch(ctx, msgs); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*benchBatch)
}

// BenchmarkRawPipelinedXADD is the baseline: plain go-redis pipelined XADD
// of the same fields (data encoded once, nothing validated), with the same
// trimming. One op is one batch of 100.
func BenchmarkRawPipelinedXADD(b *testing.B) {
	rdb := benchClient(b)
	data, err := json.Marshal(benchEvent())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		ts := strconv.FormatInt(time.Now().UnixMilli(), 10)
		_, err := rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for range benchBatch {
				pipe.XAdd(ctx, &redis.XAddArgs{
					Stream: "bench-raw:events", MaxLen: benchMaxLen, Approx: true,
					Values: []any{"type", "order.placed", "tenant", "acme", "to", "user:42", "data", string(data), "ts", ts},
				})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*benchBatch)
}
