package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/dispatcher"
	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/redis/go-redis/v9"
)

// benchEvents are n single-user events spread over 1000 users of one
// tenant: one feed append each.
func benchEvents(n int) [][]any {
	out := make([][]any, n)
	for i := range out {
		e := events.Envelope{
			Type: "order.shipped", Tenant: "acme", To: events.ToUser(fmt.Sprintf("u%d", i%1000)),
			Data: json.RawMessage(fmt.Sprintf(`{"order":"o-%d","carrier":"ups"}`, i)),
		}
		out[i] = e.Values()
	}
	return out
}

// xaddAll publishes vals to stream in pipelines of 500 and returns the
// time it took.
func xaddAll(b *testing.B, rdb redis.UniversalClient, stream string, vals [][]any) time.Duration {
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < len(vals); i += 500 {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, v := range vals[i:min(i+500, len(vals))] {
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: v})
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// BenchmarkRawXADD is the pipelined XADD rate of the same events on the
// same machine: the yardstick for BenchmarkDispatch.
func BenchmarkRawXADD(b *testing.B) {
	_, rdb := newServer(b)
	vals := benchEvents(b.N)
	b.ResetTimer()
	took := xaddAll(b, rdb, "herald:events", vals)
	b.ReportMetric(float64(b.N)/took.Seconds(), "events/s")
}

// BenchmarkDispatch measures events/s through one dispatcher: b.N events
// are published first (their pipelined XADD rate is reported as raw/s),
// then the clock runs from the dispatcher's start until the group has
// acknowledged every entry.
func BenchmarkDispatch(b *testing.B) {
	srv, rdb := newServer(b)
	space := keys.Space{}
	vals := benchEvents(b.N)
	raw := xaddAll(b, rdb, space.Events(), vals)
	d, err := dispatcher.New(rdb, dispatcher.Config{
		Consumer: "bench", Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	rc0, gc0 := procCPU(srv.PID()), procCPU(os.Getpid())
	go func() { done <- d.Run(ctx) }()
	for !drained(b, rdb, space.IngestStreams(0)) {
		time.Sleep(5 * time.Millisecond) // polling the group until it has acknowledged everything
	}
	took := time.Since(start)
	redisCPU, ownCPU := procCPU(srv.PID())-rc0, procCPU(os.Getpid())-gc0
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	reportCommandStats(b, rdb)
	b.Logf("CPU while dispatching: redis-server %.0f%%, this process %.0f%% of one core",
		100*redisCPU.Seconds()/took.Seconds(), 100*ownCPU.Seconds()/took.Seconds())
	b.ReportMetric(float64(redisCPU.Microseconds())/float64(b.N), "redis-cpu-µs/event")
	b.ReportMetric(float64(ownCPU.Microseconds())/float64(b.N), "client-cpu-µs/event")
	rate, rawRate := float64(b.N)/took.Seconds(), float64(b.N)/raw.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rawRate, "raw/s")
	b.ReportMetric(rate/rawRate, "ratio")
}

// reportCommandStats reports from INFO commandstats how many Redis
// commands one event cost, those that scripts ran included, and logs the
// table.
func reportCommandStats(b *testing.B, rdb redis.UniversalClient) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var calls float64
	for line := range strings.SplitSeq(info, "\r\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var c, u float64
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				c, _ = strconv.ParseFloat(v, 64)
			case "usec":
				u, _ = strconv.ParseFloat(v, 64)
			}
		}
		if c/float64(b.N) >= 0.001 {
			if b.N > 1000 {
				b.Logf("%-20s %6.3f calls/event %6.2f µs/event", strings.TrimPrefix(name, "cmdstat_"), c/float64(b.N), u/float64(b.N))
			}
		}
		if name != "cmdstat_evalsha" && name != "cmdstat_eval" {
			calls += c // a script's own time is the commands it ran
		}
	}
	b.ReportMetric(calls/float64(b.N), "redis-cmds/event")
}

// procCPU returns the CPU time a process has used, from /proc (0 where
// there is none).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
