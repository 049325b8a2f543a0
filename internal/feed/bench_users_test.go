package feed_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/feed"
	"github.com/heraldrt/herald/internal/keys"
	"github.com/heraldrt/herald/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// workload is a personal load test: users users, each getting perUser
// notifications in turn (event n goes to user n mod users, as herald-load
// sends them), every event with its own idempotency key. A round starts
// from an empty Redis, so the first notification of each user creates its
// feed, as in a load test against a fresh deployment; or, when steady,
// from feeds that exist and have lived past the idempotency window, as in
// production after a day (each got one notification, and another one a
// window later, before the round: not measured).
type workload struct {
	users, perUser int
	steady         bool
}

func (w workload) round() int { return w.users * w.perUser }

// callsPerAppend is how many script calls one Append's pipeline carries.
const callsPerAppend = 4

// BenchmarkAppendManyUsersIdem measures the Redis CPU that one
// notification costs when appended by the script, against two baselines
// given the same payloads in the same pipelines: the raw commands alone
// (XADD MAXLEN ~ and PUBLISH, no script), and a script shaped like
// Centrifugo's history publish (one call per message: HGET and HINCRBY of
// the meta, EXPIRE, XADD, EXPIRE, PUBLISH). Each runs on its own
// redis-server, round by round in turns, so that the ratios hold however
// fast the machine is that minute. Every server has one subscriber on
// every user's channel, as an edge with every user connected.
//
// Metrics per notification: redis-µs (used_cpu_sys+used_cpu_user of the
// server over the appends), script-µs (EVALSHA usec) and inner-µs (the
// commands the script ran), redis-B (used_memory it added); per call,
// evalsha-µs/call (usec_per_call). The raw-* and cfl-* ones are the
// baselines', x-raw and x-cfl redis-µs over theirs. Run whole rounds:
//
//	go test -run '^$' -bench ManyUsersIdem -benchtime 100000x ./internal/feed/
//
// The first workloads are the user's load test, 10,000 users with 5 each;
// then 1,000 users get 50 each and 200 users 250 each, so that feeds keep
// more idempotency keys; the last one is the first on feeds in their
// steady state.
func BenchmarkAppendManyUsersIdem(b *testing.B) {
	for _, c := range []struct {
		w       workload
		perCall int
	}{
		{workload{10_000, 5, false}, 30},
		{workload{10_000, 5, false}, 64},
		{workload{1_000, 50, false}, 30},
		{workload{200, 250, false}, 30},
		{workload{10_000, 5, true}, 30},
	} {
		name := fmt.Sprintf("users=%d/each=%d/per-call=%d", c.w.users, c.w.perUser, c.perCall)
		if c.w.steady {
			name += "/steady"
		}
		b.Run(name, func(b *testing.B) { benchManyUsers(b, c.w, c.perCall) })
	}
}

func benchManyUsers(b *testing.B, w workload, perCall int) {
	ctx := context.Background()
	script, raw, cfl := startBenchServer(b, w.users), startBenchServer(b, w.users), startBenchServer(b, w.users)
	bare := startBenchServer(b, w.users)
	var clock time.Time // the appender's; real time after the warm-up
	a := feed.NewAppender(script.rdb, feed.AppendConfig{BatchSize: perCall, Now: func() time.Time {
		return cmp.Or(clock, time.Now())
	}})
	if err := a.Load(ctx); err != nil {
		b.Fatal(err)
	}
	reqs := manyUserRequests(w)
	warm := warmUpRequests(w)
	var s, r, c, bs serverUsage
	bareSeqs := make(map[keys.Feed]uint64)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(w.round(), b.N-done)
		b.StopTimer()
		script.flush(b)
		raw.flush(b)
		cfl.flush(b)
		bare.flush(b)
		clear(bareSeqs)
		if w.steady {
			// one notification each, then another a window later
			clock = time.Now().Add(-25 * time.Hour)
			appendScript(b, a, warm[:w.users], perCall)
			clock = clock.Add(24*time.Hour + time.Second)
			appendScript(b, a, warm[w.users:], perCall)
			clock = time.Time{}
			appendRaw(b, raw.rdb, warm, perCall)
			appendCentrifugoLike(b, cfl.rdb, warm, perCall)
			appendBare(b, bare.rdb, bareSeqs, warm, perCall)
		}
		b.StartTimer()
		s.add(script.measure(b, func() { appendScript(b, a, reqs[:n], perCall) }))
		b.StopTimer()
		r.add(raw.measure(b, func() { appendRaw(b, raw.rdb, reqs[:n], perCall) }))
		c.add(cfl.measure(b, func() { appendCentrifugoLike(b, cfl.rdb, reqs[:n], perCall) }))
		bs.add(bare.measure(b, func() { appendBare(b, bare.rdb, bareSeqs, reqs[:n], perCall) }))
		b.StartTimer()
		done += n
	}
	b.StopTimer()
	n := float64(b.N)
	ev := s.cmds["evalsha"]
	b.ReportMetric(s.cpuUsec/n, "redis-µs/notif")
	b.ReportMetric(ev.usec/n, "script-µs/notif")
	b.ReportMetric((s.usec()-ev.usec)/n, "inner-µs/notif")
	b.ReportMetric(ev.usec/max(ev.calls, 1), "evalsha-µs/call")
	b.ReportMetric(n/max(ev.calls, 1), "notif/call")
	b.ReportMetric(r.cpuUsec/n, "raw-redis-µs/notif")
	b.ReportMetric(r.usec()/n, "raw-cmds-µs/notif")
	b.ReportMetric(s.cpuUsec/r.cpuUsec, "x-raw")
	b.ReportMetric(c.cpuUsec/n, "cfl-redis-µs/notif")
	b.ReportMetric(s.cpuUsec/c.cpuUsec, "x-cfl")
	b.ReportMetric(bs.cpuUsec/n, "bare-redis-µs/notif")
	b.ReportMetric(bs.cpuUsec/c.cpuUsec, "bare-x-cfl")
	b.ReportMetric(s.memory/n, "redis-B/notif")
	b.ReportMetric(r.memory/n, "raw-redis-B/notif")
	if b.N >= w.round() {
		s.log(b, "script", n)
		r.log(b, "raw", n)
		c.log(b, "cfl", n)
		bs.log(b, "bare", n)
	}
}

// manyUserRequests returns one round: event n to user n mod w.users, in
// the shape herald-load gives them (its payload, type and keys).
func manyUserRequests(w workload) []feed.Request {
	reqs := make([]feed.Request, w.round())
	ms := time.Now().UnixMilli()
	for n := range reqs {
		reqs[n] = feed.Request{
			Feed:         keys.UserFeed("acme", "user-"+strconv.Itoa(n%w.users)),
			SourceStream: "herald:events",
			SourceID:     strconv.FormatInt(ms+int64(n/8), 10) + "-" + strconv.Itoa(n%8),
			IdemKey:      "r1a2b3-" + strconv.Itoa(n),
			Type:         "bench.load",
			TS:           ms + int64(n/8),
			Data:         fmt.Appendf(nil, `{"t":%d,"n":%d,"r":"r1a2b3"}`, (ms+int64(n/8))*1000, n),
		}
	}
	return reqs
}

// warmUpRequests returns two notifications per user of w, older than
// those of manyUserRequests.
func warmUpRequests(w workload) []feed.Request {
	reqs := make([]feed.Request, 2*w.users)
	for n := range reqs {
		reqs[n] = feed.Request{
			Feed:         keys.UserFeed("acme", "user-"+strconv.Itoa(n%w.users)),
			SourceStream: "herald:events",
			SourceID:     "1-" + strconv.Itoa(n),
			IdemKey:      "warm-" + strconv.Itoa(n),
			Type:         "bench.load",
			TS:           1,
			Data:         fmt.Appendf(nil, `{"t":%d,"n":%d,"r":"warm00"}`, 1000, n),
		}
	}
	return reqs
}

// appendScript appends reqs as the dispatcher does: Appends of
// callsPerAppend script calls of perCall requests each.
func appendScript(b *testing.B, a *feed.Appender, reqs []feed.Request, perCall int) {
	ctx := context.Background()
	step := perCall * callsPerAppend
	for i := 0; i < len(reqs); i += step {
		res, err := a.Append(ctx, reqs[i:min(i+step, len(reqs))])
		if err != nil {
			b.Fatal(err)
		}
		if !res[0].Appended {
			b.Fatalf("request %d: %+v", i, res[0])
		}
	}
}

// appendRaw writes the entry and publishes the payload of each request,
// with the same pipelines as appendScript and no script: the floor.
func appendRaw(b *testing.B, rdb *redis.Client, reqs []feed.Request, perCall int) {
	ctx, sp := context.Background(), keys.Space{}
	step := perCall * callsPerAppend
	seqs := make(map[keys.Feed]uint64)
	var buf []byte
	for i := 0; i < len(reqs); i += step {
		pipe := rdb.Pipeline()
		for _, r := range reqs[i:min(i+step, len(reqs))] {
			seqs[r.Feed]++
			pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: sp.FeedStream(r.Feed), MaxLen: 1000, Approx: true,
				Values: []any{"type", r.Type, "ts", r.TS, "data", r.Data},
			})
			e := feed.Entry{Epoch: "0123456789", Seq: seqs[r.Feed], Type: r.Type, TS: r.TS, Data: r.Data}
			buf = e.AppendPayload(buf[:0])
			pipe.Publish(ctx, sp.FeedChannel(r.Feed), string(buf))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// appendBare sends, with the pipelines of appendScript and no script, the
// fewest commands an append that keeps each feed's state in its meta hash
// could send per notification if the dispatcher knew every feed's seq
// (it does not check anything; it only measures): HSETNX of the
// idempotency key (the check and the mark in one), XADD under the next
// seq, HSET of the seq and the source position, PUBLISH, and the two
// EXPIREs when the feed is new. What the script costs above this is what
// Lua costs; what this costs is the floor of that design.
// seqs holds each feed's last seq on rdb.
func appendBare(b *testing.B, rdb *redis.Client, seqs map[keys.Feed]uint64, reqs []feed.Request, perCall int) {
	ctx, sp := context.Background(), keys.Space{}
	step := perCall * callsPerAppend
	now := strconv.FormatInt(time.Now().Unix(), 10)
	var buf []byte
	for i := 0; i < len(reqs); i += step {
		pipe := rdb.Pipeline()
		for _, r := range reqs[i:min(i+step, len(reqs))] {
			seqs[r.Feed]++
			seq := strconv.FormatUint(seqs[r.Feed], 10)
			stream, meta := sp.FeedStream(r.Feed), sp.FeedMeta(r.Feed)
			pipe.HSetNX(ctx, meta, "i:"+r.IdemKey, now+":"+seq)
			pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: stream, MaxLen: 1000, Approx: true, ID: seq + "-0",
				Values: []any{"type", r.Type, "ts", r.TS, "data", r.Data},
			})
			pipe.HSet(ctx, meta, "seq", seq, "src:"+r.SourceStream, r.SourceID)
			if seqs[r.Feed] == 1 {
				pipe.Expire(ctx, stream, 7*24*time.Hour)
				pipe.Expire(ctx, meta, 7*24*time.Hour)
			}
			e := feed.Entry{Epoch: "0123456789", Seq: seqs[r.Feed], Type: r.Type, TS: r.TS, Data: r.Data}
			buf = e.AppendPayload(buf[:0])
			pipe.Publish(ctx, sp.FeedChannel(r.Feed), string(buf))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// centrifugoLike is one history publish the way Centrifugo's Redis broker
// does it (not its code): the meta's epoch and next offset, TTLs on both
// keys, the entry under that offset, then the publication.
var centrifugoLike = redis.NewScript(`
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
local offset = redis.call('HINCRBY', KEYS[2], 's', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], offset, 'd', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], '__p1:' .. offset .. ':' .. epoch .. '__' .. ARGV[5])
return {offset, epoch}`)

// appendCentrifugoLike publishes each request with centrifugoLike, one
// call per request, in the pipelines of appendScript.
func appendCentrifugoLike(b *testing.B, rdb *redis.Client, reqs []feed.Request, perCall int) {
	ctx, sp := context.Background(), keys.Space{}
	if err := centrifugoLike.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	step := perCall * callsPerAppend
	for i := 0; i < len(reqs); i += step {
		pipe := rdb.Pipeline()
		for _, r := range reqs[i:min(i+step, len(reqs))] {
			centrifugoLike.EvalSha(ctx, pipe, []string{sp.FeedStream(r.Feed), sp.FeedMeta(r.Feed)},
				1000, 604800, "0123456789", sp.FeedChannel(r.Feed), r.Data)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServer is a redis-server with a subscriber to every user's channel
// that reads and drops what it receives.
type benchServer struct {
	rdb *redis.Client
}

func startBenchServer(b *testing.B, users int) *benchServer {
	srv := redistest.Start(b)
	s := &benchServer{rdb: srv.Client(b)}
	conn, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() { _ = conn.Close(); wg.Wait() })
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "*%d\r\n$9\r\nSUBSCRIBE\r\n", users+1)
	var last string
	for u := range users {
		last = keys.Space{}.FeedChannel(keys.UserFeed("acme", "user-"+strconv.Itoa(u)))
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(last), last)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	wg.Go(func() { _, _ = io.Copy(io.Discard, conn) })
	deadline := time.Now().Add(10 * time.Second)
	for s.rdb.PubSubNumSub(context.Background(), last).Val()[last] != 1 {
		if time.Now().After(deadline) {
			b.Fatal("the subscriber is not subscribed after 10s")
		}
		time.Sleep(5 * time.Millisecond) // polling PUBSUB NUMSUB
	}
	return s
}

func (s *benchServer) flush(b *testing.B) {
	if err := s.rdb.FlushAll(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

// measure runs fn and returns what the server spent meanwhile.
func (s *benchServer) measure(b *testing.B, fn func()) serverUsage {
	before := s.usage(b)
	fn()
	after := s.usage(b)
	d := serverUsage{cpuUsec: after.cpuUsec - before.cpuUsec, memory: after.memory - before.memory, cmds: make(map[string]cmdStat)}
	for name, c := range after.cmds {
		d.cmds[name] = cmdStat{calls: c.calls - before.cmds[name].calls, usec: c.usec - before.cmds[name].usec}
	}
	return d
}

// serverUsage is CPU time (used_cpu_sys+used_cpu_user), memory
// (used_memory) and command stats.
type serverUsage struct {
	cpuUsec, memory float64
	cmds            map[string]cmdStat
}

type cmdStat struct{ calls, usec float64 }

func (s *benchServer) usage(b *testing.B) serverUsage {
	info, err := s.rdb.Info(context.Background(), "cpu", "memory", "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	u := serverUsage{cmds: make(map[string]cmdStat)}
	for line := range strings.SplitSeq(info, "\r\n") {
		name, rest, _ := strings.Cut(line, ":")
		switch {
		case name == "used_cpu_sys" || name == "used_cpu_user":
			v, _ := strconv.ParseFloat(rest, 64)
			u.cpuUsec += v * 1e6
		case name == "used_memory":
			u.memory, _ = strconv.ParseFloat(rest, 64)
		case strings.HasPrefix(name, "cmdstat_"):
			var c cmdStat
			for kv := range strings.SplitSeq(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					c.calls, _ = strconv.ParseFloat(v, 64)
				case "usec":
					c.usec, _ = strconv.ParseFloat(v, 64)
				}
			}
			u.cmds[strings.TrimPrefix(name, "cmdstat_")] = c
		}
	}
	return u
}

func (u *serverUsage) add(d serverUsage) {
	u.cpuUsec, u.memory = u.cpuUsec+d.cpuUsec, u.memory+d.memory
	if u.cmds == nil {
		u.cmds = make(map[string]cmdStat)
	}
	for name, c := range d.cmds {
		t := u.cmds[name]
		u.cmds[name] = cmdStat{calls: t.calls + c.calls, usec: t.usec + c.usec}
	}
}

// usec is the time of every command but INFO, a script's inner commands
// included.
func (u *serverUsage) usec() float64 {
	var t float64
	for name, c := range u.cmds {
		if name != "info" {
			t += c.usec
		}
	}
	return t
}

func (u *serverUsage) log(b *testing.B, what string, n float64) {
	for name, c := range u.cmds {
		if c.calls > 0 && name != "info" {
			b.Logf("%-6s %-10s %6.3f calls/notif %6.2f µs/notif %6.2f µs/call", what, name, c.calls/n, c.usec/n, c.usec/c.calls)
		}
	}
}
