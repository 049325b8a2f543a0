package feed_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
)

// BenchmarkAppend appends b.N notifications spread over 1000 user feeds
// (10 for "hot"), 250 per Append (a dispatcher batch's share), and reports
// what one costs
// Redis (CPU time of the server process, commands run, those the script
// ran included, and script time from INFO commandstats) and the client.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name  string
		cfg   feed.AppendConfig
		feeds int
	}{
		{"one-per-call", feed.AppendConfig{Grouping: feed.GroupNone}, 1000},
		{"batch-32", feed.AppendConfig{BatchSize: 32}, 1000},
		{"batch-64", feed.AppendConfig{}, 1000},
		{"batch-128", feed.AppendConfig{BatchSize: 128}, 1000},
		{"batch-64-hot", feed.AppendConfig{}, 10},
	} {
		b.Run(c.name, func(b *testing.B) { benchAppend(b, c.cfg, c.feeds) })
	}
}

func benchAppend(b *testing.B, cfg feed.AppendConfig, feeds int) {
	ctx := context.Background()
	srv := redistest.Start(b)
	rdb := srv.Client(b)
	a := feed.NewAppender(rdb, cfg)
	reqs := make([]feed.Request, b.N)
	for i := range reqs {
		reqs[i] = req(keys.UserFeed("acme", "u"+strconv.Itoa(i%feeds)), fmt.Sprintf("%d-0", i+1), i)
	}
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0, own0 := procCPU(srv.PID()), procCPU(os.Getpid())
	start := time.Now()
	for i := 0; i < len(reqs); i += 250 {
		if _, err := a.Append(ctx, reqs[i:min(i+250, len(reqs))]); err != nil {
			b.Fatal(err)
		}
	}
	took := time.Since(start)
	cpu, own := procCPU(srv.PID())-cpu0, procCPU(os.Getpid())-own0
	b.StopTimer()
	calls, scriptUsec := commandStats(b, rdb.Info(ctx, "commandstats").Val())
	n := float64(b.N)
	b.ReportMetric(n/took.Seconds(), "appends/s")
	b.ReportMetric(float64(cpu.Microseconds())/n, "redis-cpu-µs/append")
	b.ReportMetric(float64(own.Microseconds())/n, "client-cpu-µs/append")
	b.ReportMetric(calls/n, "redis-cmds/append")
	b.ReportMetric(scriptUsec/n, "script-µs/append")
}

// commandStats sums the calls of every command but scripts, and the time
// spent in scripts, from INFO commandstats.
func commandStats(b *testing.B, info string) (calls, scriptUsec float64) {
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
		if b.N > 1000 {
			b.Logf("%-12s %6.3f calls/append %6.2f µs/append", strings.TrimPrefix(name, "cmdstat_"), c/float64(b.N), u/float64(b.N))
		}
		if name == "cmdstat_evalsha" || name == "cmdstat_eval" {
			scriptUsec += u
			continue
		}
		calls += c
	}
	return calls, scriptUsec
}

// procCPU returns the CPU time a process has used, from /proc.
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
