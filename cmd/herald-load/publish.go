package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
)

// benchType is the event type of every bench event.
const benchType = "bench.load"

// publisher sends the personal load: event n goes to user u<n mod clients>,
// paced open-loop to rate: each pass sends every event due by now (at most
// batch in one pipeline), stamped with the time it is sent, so a slow Redis
// shows up as larger batches and as lag behind the schedule, not as a lower
// rate that hides latency.
type publisher struct {
	p       *producer.Producer
	tenant  string
	runID   string
	clients int
	rate    float64
	total   int
	batch   int

	sent     atomic.Int64  // stored in the stream
	errors   atomic.Int64  // refused or failed
	maxLagUS atomic.Int64  // furthest behind schedule (a pass waits for a millisecond of events, so up to about 1ms of it is by design)
	elapsed  time.Duration // from the first send to the last reply (valid after run)
	expected []int32       // per user: events stored for it (valid after run)
	firstErr atomic.Pointer[string]
}

func newPublisher(p *producer.Producer, o *benchFlags) *publisher {
	return &publisher{p: p, tenant: o.tenant, runID: o.run, clients: o.clients, rate: o.rate,
		total: int(o.rate * o.duration.Seconds()), batch: o.batch, expected: make([]int32, o.clients)}
}

// run publishes until total are sent or ctx ends.
func (pb *publisher) run(ctx context.Context) {
	start := time.Now()
	defer func() { pb.elapsed = time.Since(start) }()
	msgs := make([]producer.Message, 0, pb.batch)
	data := make([]byte, 0, 96)
	// A pass waits until a millisecond's worth of events is due (or one
	// event, at rates under 1000/s): a producer batching like this is what
	// a busy service does, and one XADD round trip per event would cost
	// the shared cores more than the events it carries.
	step := max(1, int(pb.rate/1000))
	for n := 0; n < pb.total && ctx.Err() == nil; {
		due := min(pb.total, int(time.Since(start).Seconds()*pb.rate)+1)
		if due < min(pb.total, n+step) {
			next := start.Add(time.Duration(float64(n+step-1) / pb.rate * float64(time.Second)))
			if sleepUntil(ctx, next) != nil {
				return
			}
			continue
		}
		if lag := time.Since(start.Add(time.Duration(float64(n) / pb.rate * float64(time.Second)))); lag.Microseconds() > pb.maxLagUS.Load() {
			pb.maxLagUS.Store(lag.Microseconds())
		}
		end := min(due, n+pb.batch)
		now := time.Now().UnixMicro()
		msgs = msgs[:0]
		for i := n; i < end; i++ {
			data = appendBenchData(data[:0], now, int64(i), pb.runID)
			msgs = append(msgs, producer.Envelope(events.Envelope{Type: benchType, Tenant: pb.tenant,
				To: events.ToUser("u" + strconv.Itoa(i%pb.clients)), Data: json.RawMessage(string(data))}))
		}
		ids, err := pb.p.PublishBatch(ctx, msgs)
		pb.count(n, end, ids, err)
		n = end
	}
}

// count records which of events n..end-1 were stored.
func (pb *publisher) count(n, end int, ids []string, err error) {
	if err != nil {
		msg := err.Error()
		pb.firstErr.CompareAndSwap(nil, &msg)
	}
	for i := n; i < end; i++ {
		if i-n < len(ids) && ids[i-n] != "" {
			pb.sent.Add(1)
			pb.expected[i%pb.clients]++
		} else {
			pb.errors.Add(1)
		}
	}
}

// broadcast publishes round r to the whole tenant and returns its publish
// time in unix µs.
func broadcastRound(ctx context.Context, p *producer.Producer, tenant, run string, r int) (int64, error) {
	now := time.Now().UnixMicro()
	data := appendBenchData(nil, now, int64(r), run)
	_, err := p.PublishEnvelope(ctx, events.Envelope{Type: benchType, Tenant: tenant, To: events.ToTenant(), Data: data})
	return now, err
}

// parseBenchData reads what appendBenchData wrote without the JSON decoder
// (the load generator reads every notification of a run), and anything
// else with it.
func parseBenchData(b []byte) (benchData, bool) {
	var d benchData
	r, ok := bytes.CutPrefix(b, []byte(`{"t":`))
	if ok {
		d.T, r, ok = cutInt(r, `,"n":`)
	}
	if ok {
		d.N, r, ok = cutInt(r, `,"r":"`)
	}
	if ok {
		var run []byte
		run, ok = bytes.CutSuffix(r, []byte(`"}`))
		ok = ok && len(run) > 0 && bytes.IndexFunc(run, func(c rune) bool {
			return !('a' <= c && c <= 'z' || '0' <= c && c <= '9')
		}) < 0
		d.R = string(run)
	}
	if ok {
		return d, true
	}
	d = benchData{}
	return d, json.Unmarshal(b, &d) == nil
}

// cutInt reads a decimal int64 followed by sep.
func cutInt(b []byte, sep string) (int64, []byte, bool) {
	i := bytes.Index(b, []byte(sep))
	if i <= 0 {
		return 0, nil, false
	}
	v, err := strconv.ParseInt(string(b[:i]), 10, 64)
	return v, b[i+len(sep):], err == nil
}

// appendBenchData appends {"t":<us>,"n":<n>,"r":"<run>"}; run is [a-z0-9].
func appendBenchData(b []byte, tUS, n int64, run string) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, tUS, 10)
	b = append(b, `,"n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"r":"`...)
	b = append(b, run...)
	return append(b, `"}`...)
}
