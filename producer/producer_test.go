package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/producer"
	"github.com/redis/go-redis/v9"
)

// setup starts a redis-server of the test's own and returns a client.
func setup(t *testing.T) (*redistest.Server, *redis.Client) {
	t.Helper()
	srv := redistest.Start(t)
	return srv, srv.Client(t)
}

// readAll reads a stream back as entry ids and parsed envelopes.
func readAll(t *testing.T, rdb *redis.Client, stream string) ([]string, []events.Envelope) {
	t.Helper()
	msgs, err := rdb.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("xrange %s: %v", stream, err)
	}
	ids := make([]string, len(msgs))
	envs := make([]events.Envelope, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
		if envs[i], err = events.ParseValues(m.Values); err != nil {
			t.Fatalf("entry %s does not parse: %v (%v)", m.ID, err, m.Values)
		}
	}
	return ids, envs
}

func order(id, buyer string) *events.OrderPlacedEvent {
	return &events.OrderPlacedEvent{OrderID: id, BuyerID: buyer, TotalCents: 4200, Currency: "EUR",
		Items: []events.LineItem{{SKU: "sku-1", Name: "Mug", Quantity: 2, Cents: 2100}}}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublishRoundTrip(t *testing.T) {
	_, rdb := setup(t)
	at := time.UnixMilli(1732550000123)
	p := producer.New(rdb, producer.WithTenant("acme"))
	ev := order("o-1", "42")
	id, err := p.Publish(t.Context(), ev, producer.IdempotencyKey("order-o-1-placed"),
		producer.Device("phone"), producer.TTL(90*time.Second), producer.At(at))
	if err != nil {
		t.Fatal(err)
	}
	ids, envs := readAll(t, rdb, "herald:events")
	if len(envs) != 1 || ids[0] != id {
		t.Fatalf("stream holds %v, want one entry %s", ids, id)
	}
	want := events.Envelope{Type: "order.placed", Tenant: "acme", To: events.ToUser("42"),
		Data: mustJSON(t, ev), ID: "order-o-1-placed", Device: "phone", TTL: 90 * time.Second, TS: at.UnixMilli()}
	assertEnvelope(t, envs[0], want)
}

func assertEnvelope(t *testing.T, got, want events.Envelope) {
	t.Helper()
	if got.Type != want.Type || got.Tenant != want.Tenant || got.To.String() != want.To.String() ||
		string(got.Data) != string(want.Data) || got.ID != want.ID || got.Device != want.Device ||
		got.TTL != want.TTL || got.TS != want.TS || !mapsEqual(got.Ext, want.Ext) {
		t.Fatalf("read back\n %+v\nwant\n %+v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestPublishDefaultsTSToClock(t *testing.T) {
	_, rdb := setup(t)
	now := time.UnixMilli(1700000000000)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithClock(func() time.Time { return now }))
	if _, err := p.Publish(t.Context(), order("o-1", "42")); err != nil {
		t.Fatal(err)
	}
	_, envs := readAll(t, rdb, "herald:events")
	if envs[0].TS != now.UnixMilli() {
		t.Fatalf("ts = %d, want the clock's %d", envs[0].TS, now.UnixMilli())
	}
}

func TestAudience(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	ctx := t.Context()
	if _, err := p.Publish(ctx, order("o-1", "42")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx, order("o-2", "42"), producer.To(events.ToTopic("flash-sale"))); err != nil {
		t.Fatal(err)
	}
	promo := &events.PromotionEvent{Campaign: "c1", Title: "Sale", Body: "50% off"}
	if _, err := p.Publish(ctx, promo, producer.To(events.ToTenant())); err != nil {
		t.Fatal(err)
	}
	// The entry on the wire always names its audience, default or not.
	msgs, err := rdb.XRange(ctx, "herald:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.Values["to"].(string))
	}
	if want := []string{"user:42", "topic:flash-sale", "tenant"}; !slices.Equal(got, want) {
		t.Fatalf("to fields %q, want %q", got, want)
	}
}

func TestPublishEnvelope(t *testing.T) {
	_, rdb := setup(t)
	now := time.UnixMilli(1700000000000)
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithClock(func() time.Time { return now }))
	chat := events.Envelope{Type: "chat.message", To: events.ToUsers("7", "8"),
		Data: json.RawMessage(`{"text":"hi"}`), Ext: map[string]string{"x-trace": "abc"}}
	id1, err := p.PublishEnvelope(t.Context(), chat)
	if err != nil {
		t.Fatal(err)
	}
	// A registered type without To gets its default audience on the wire.
	shipped := events.Envelope{Type: "order.shipped", Tenant: "globex", TS: 5,
		Data: json.RawMessage(`{"order_id":"o-1","buyer_id":"99"}`)}
	id2, err := p.PublishEnvelope(t.Context(), shipped)
	if err != nil {
		t.Fatal(err)
	}
	ids, envs := readAll(t, rdb, "herald:events")
	if !slices.Equal(ids, []string{id1, id2}) {
		t.Fatalf("ids %v, want %v", ids, []string{id1, id2})
	}
	chat.Tenant, chat.TS = "acme", now.UnixMilli()
	assertEnvelope(t, envs[0], chat)
	shipped.To = events.ToUser("99")
	assertEnvelope(t, envs[1], shipped)
	raw, _ := rdb.XRange(t.Context(), "herald:events", id2, id2).Result()
	if raw[0].Values["to"] != "user:99" {
		t.Fatalf("to on the wire = %v, want user:99", raw[0].Values["to"])
	}
}

func TestPartitionsRouteTenantToOneStream(t *testing.T) {
	_, rdb := setup(t)
	ctx := t.Context()
	p := producer.New(rdb, producer.WithPrefix("hx:"), producer.WithPartitions(8))
	tenants := []string{"acme", "globex", "initech", "t1", "t2", "t3", "t4", "t5", "t6", "t7"}
	for round := range 3 {
		for _, tenant := range tenants {
			if _, err := p.Publish(ctx, order("o", "u"), producer.Tenant(tenant), producer.IdempotencyKey(tenant+"-"+string(rune('a'+round)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	streams := keys.Space{Prefix: "hx:"}.IngestStreams(8)
	seen := map[string]string{} // tenant -> stream
	used := 0
	for _, s := range streams {
		_, envs := readAll(t, rdb, s)
		if len(envs) > 0 {
			used++
		}
		for _, e := range envs {
			if prev, ok := seen[e.Tenant]; ok && prev != s {
				t.Fatalf("tenant %s in %s and %s", e.Tenant, prev, s)
			}
			seen[e.Tenant] = s
		}
	}
	if len(seen) != len(tenants) || used < 3 {
		t.Fatalf("tenants %v over %d streams", seen, used)
	}
	// Fixed value, as documented in docs/producers.md: fnv1a32("acme") =
	// 0x45fd71af = 1174237615, mod 8 = 7.
	if seen["acme"] != "hx:events:{7}" {
		t.Fatalf("acme went to %s, want hx:events:{7}", seen["acme"])
	}
	if n, _ := rdb.Exists(ctx, "hx:events").Result(); n != 0 {
		t.Fatal("the unpartitioned stream was written")
	}
}

func TestMaxLenTrims(t *testing.T) {
	_, rdb := setup(t)
	ctx := t.Context()
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithMaxLen(1000))
	const written = 6000
	for range written / 500 {
		batch := make([]producer.Message, 500)
		for i := range batch {
			batch[i] = producer.Event(order("o", "42"))
		}
		if _, err := p.PublishBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	n, err := rdb.XLen(ctx, "herald:events").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Approximate trimming removes whole nodes of 100 entries.
	if n < 1000 || n > 1500 {
		t.Fatalf("stream holds %d entries after %d written with MAXLEN ~ 1000", n, written)
	}
}

func TestMinIDAgeTrims(t *testing.T) {
	_, rdb := setup(t)
	ctx := t.Context()
	clock := time.Now()
	p := producer.New(rdb, producer.WithTenant("acme"), producer.WithMinIDAge(time.Hour),
		producer.WithClock(func() time.Time { return clock }))
	batch := make([]producer.Message, 1000)
	for i := range batch {
		batch[i] = producer.Event(order("o", "42"))
	}
	if _, err := p.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, "herald:events").Val(); n != 1000 {
		t.Fatalf("entries younger than an hour were trimmed: %d left of 1000", n)
	}
	// Two hours later by the producer's clock, every entry so far is too old.
	clock = clock.Add(2 * time.Hour)
	if _, err := p.Publish(ctx, order("o", "42")); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, "herald:events").Val(); n > 200 {
		t.Fatalf("MINID ~ left %d of 1001 entries older than the limit", n)
	}
}

func TestRedisErrorIsWrapped(t *testing.T) {
	_, rdb := setup(t)
	ctx := t.Context()
	rdb.Set(ctx, "herald:events", "not a stream", 0)
	p := producer.New(rdb, producer.WithTenant("acme"))
	_, err := p.Publish(ctx, order("o-1", "42"))
	if err == nil || !strings.HasPrefix(err.Error(), "publish order.placed to herald:events: WRONGTYPE") {
		t.Fatalf("err = %v, want it to start with %q", err, "publish order.placed to herald:events: WRONGTYPE")
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		t.Fatalf("the Redis error is not in the chain: %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	_, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Publish(ctx, order("o-1", "42")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish err = %v, want context.Canceled", err)
	}
	if _, err := p.PublishBatch(ctx, []producer.Message{producer.Event(order("o-1", "42"))}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PublishBatch err = %v, want context.Canceled", err)
	}
	if n := rdb.Exists(t.Context(), "herald:events").Val(); n != 0 {
		t.Fatal("a cancelled publish wrote to the stream")
	}
}

func TestRedisKilledFailsFast(t *testing.T) {
	srv, rdb := setup(t)
	p := producer.New(rdb, producer.WithTenant("acme"))
	if _, err := p.Publish(t.Context(), order("o-1", "42")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	// go-redis redials and retries (about 2 s here), then gives up: the
	// deadline only catches a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err := p.Publish(ctx, order("o-2", "42"))
	if err == nil || !strings.HasPrefix(err.Error(), "publish order.placed to herald:events: ") {
		t.Fatalf("Publish err = %v, want a wrapped connection error", err)
	}
	ids, err := p.PublishBatch(ctx, []producer.Message{producer.Event(order("o-3", "42")), producer.Event(order("o-4", "42"))})
	var be *producer.BatchError
	if !errors.As(err, &be) || be.Index != 0 || be.Stream != "herald:events" || len(ids) != 2 || ids[0] != "" {
		t.Fatalf("PublishBatch = %q, %v; want a BatchError for message 0", ids, err)
	}
	if ctx.Err() != nil {
		t.Fatal("publishing to a dead server hung until the deadline")
	}
}
