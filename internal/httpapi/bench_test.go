package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/httpapi"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

// The API's two hot paths on this machine, each next to the raw Redis
// commands it sends, in the same run against the same redis-server:
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/httpapi/
//
// BenchmarkInboxPage: GET /v1/inbox?limit=50 for a user whose feed and
// tenant feed hold 1,000 notifications each (the default retention), all
// unread; BenchmarkInboxPageRaw: the same reads as one pipeline (HGETALL of
// the read state, HGET epoch + XREVRANGE COUNT 51 of each feed) without the
// unread count. BenchmarkPublishBatch: POST /v1/publish/batch of 100
// events; BenchmarkPublishBatchRaw: 100 pipelined XADDs of the same fields.

var secret = []byte("bench-secret-that-is-at-least-32-bytes-long")

type bench struct {
	srv   *httptest.Server
	rdb   *redis.Client
	token string
	key   string
}

func newBench(b *testing.B) *bench {
	b.Helper()
	rdb := redistest.Start(b).Client(b)
	ver, err := auth.New(auth.Config{HS256Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ver.Close() })
	file := filepath.Join(b.TempDir(), "keys")
	key := "bench-0123456789abcdef"
	os.WriteFile(file, []byte("bench "+key+" *\n"), 0o600)
	ks, err := httpapi.LoadKeys(file)
	if err != nil {
		b.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Redis: rdb, Verifier: ver, Keys: ks})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api)
	b.Cleanup(srv.Close)
	tok, err := auth.Mint(secret, auth.Claims{Subject: "u1", Tenant: "acme", Device: "phone"}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return &bench{srv: srv, rdb: rdb, token: tok, key: key}
}

func (bn *bench) do(b *testing.B, method, path, cred string, body []byte, want int) {
	req, _ := http.NewRequest(method, bn.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := bn.srv.Client().Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

func fillFeeds(b *testing.B, rdb *redis.Client) {
	a := feed.NewAppender(rdb, feed.AppendConfig{MaxLen: 1000})
	var reqs []feed.Request
	for i := 1; i <= 2000; i++ {
		f := keys.UserFeed("acme", "u1")
		if i%2 == 0 {
			f = keys.TenantFeed("acme")
		}
		reqs = append(reqs, feed.Request{Feed: f, SourceStream: "s", SourceID: fmt.Sprintf("%d-0", i), Type: "order.placed",
			TS: int64(1_700_000_000_000 + i), Data: []byte(`{"order":"A-` + strconv.Itoa(i) + `","total":{"amount":4200,"currency":"EUR"},"items":3}`)})
	}
	if _, err := a.Append(context.Background(), reqs); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkInboxPage(b *testing.B) {
	bn := newBench(b)
	fillFeeds(b, bn.rdb)
	bn.do(b, "GET", "/v1/inbox?limit=50", bn.token, nil, 200)
	b.ResetTimer()
	for range b.N {
		bn.do(b, "GET", "/v1/inbox?limit=50", bn.token, nil, 200)
	}
}

func BenchmarkInboxPageRaw(b *testing.B) {
	bn := newBench(b)
	fillFeeds(b, bn.rdb)
	ctx := context.Background()
	sp := keys.Space{}
	b.ResetTimer()
	for range b.N {
		_, err := bn.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HGetAll(ctx, sp.ReadState("acme", "u1"))
			for _, f := range []keys.Feed{keys.UserFeed("acme", "u1"), keys.TenantFeed("acme")} {
				p.HGet(ctx, sp.FeedMeta(f), "epoch")
				p.XRevRangeN(ctx, sp.FeedStream(f), "+", "-", 51)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func batchBody(n int) []byte {
	evs := make([]map[string]any, n)
	for i := range evs {
		evs[i] = map[string]any{"type": "order.placed", "tenant": "acme", "to": "user:u" + strconv.Itoa(i),
			"data": map[string]any{"order": "A-" + strconv.Itoa(i), "total": 4200}, "id": "o-" + strconv.Itoa(i)}
	}
	raw, _ := json.Marshal(map[string]any{"events": evs})
	return raw
}

func BenchmarkPublishBatch(b *testing.B) {
	bn := newBench(b)
	body := batchBody(100)
	b.ResetTimer()
	for range b.N {
		bn.do(b, "POST", "/v1/publish/batch", bn.key, body, 202)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkPublishBatchRaw(b *testing.B) {
	bn := newBench(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		_, err := bn.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range 100 {
				p.XAdd(ctx, &redis.XAddArgs{Stream: "herald:events", Values: []string{
					"type", "order.placed", "tenant", "acme", "to", "user:u" + strconv.Itoa(i),
					"data", `{"order":"A-` + strconv.Itoa(i) + `","total":4200}`, "id", "o-" + strconv.Itoa(i), "ts", "1700000000000"}})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
