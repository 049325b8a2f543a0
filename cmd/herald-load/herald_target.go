package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrt/herald/events"
	"github.com/heraldrt/herald/producer"
	"github.com/heraldrt/herald/wsedge/auth"
	"github.com/redis/go-redis/v9"
)

// secretEnv holds the edges' HS256 secret (the edge reads the same
// variable); the coordinator passes it on to its workers.
const secretEnv = "HERALD_JWT_HS256_SECRET"

// loadType is the event type of every load event.
const loadType = "bench.load"

var heraldSpec = targetSpec{flags: heraldFlagSet, client: heraldClientSide}

// heraldFlags are the Herald target's settings: a deployment that is
// already running (scripts/loadtest.sh starts it).
type heraldFlags struct {
	edges      string
	redis      redisOptions
	partitions int
	secret     string
	metrics    string
	dataDir    string
	wire       heraldWire
	payload    string
}

func heraldFlagSet(f *flags) targetFlags {
	o := new(heraldFlags)
	f.redis(&o.redis)
	f.String(&o.edges, "edges", "ws://127.0.0.1:8080/ws", "herald: comma-separated edge URLs; client i uses edge i mod count")
	f.Int(&o.partitions, "partitions", 0, "herald: ingest partitions; must match the dispatcher")
	f.StringVar(&o.secret, "secret", "", "herald: the edges' HS256 secret, to mint client tokens (env "+secretEnv+")")
	f.String(&o.metrics, "metrics", "", "herald: comma-separated name=http://host:port/metrics of every Herald process to sample (a name starting with \"edge\" marks an edge)")
	f.String(&o.dataDir, "edge-data-dir", "", "herald: the edge's --data-dir, whose size is reported (one edge)")
	o.wire.flags(f)
	f.String(&o.payload, "payload", payloadSmall, "herald: each event's data: small (the load fields, about 45 bytes) or order (those and a realistic order, about 300 bytes)")
	return o
}

func (o *heraldFlags) open(c targetCommon) (Target, error) {
	if o.secret == "" {
		o.secret = os.Getenv(secretEnv)
	}
	if len(o.secret) < auth.MinSecretLen {
		return nil, fmt.Errorf("%w: pass the edges' HS256 secret (at least %d bytes) in --secret or %s", errUsage, auth.MinSecretLen, secretEnv)
	}
	if len(splitList(o.edges)) == 0 {
		return nil, fmt.Errorf("%w: --edges is empty", errUsage)
	}
	if err := o.wire.check(); err != nil {
		return nil, err
	}
	if o.payload != payloadSmall && o.payload != payloadOrder {
		return nil, fmt.Errorf("%w: --payload %q: want %s or %s", errUsage, o.payload, payloadSmall, payloadOrder)
	}
	if !events.ValidTenant(c.tenant) {
		return nil, fmt.Errorf("%w: --tenant %q is not a valid tenant id", errUsage, c.tenant)
	}
	eps, err := parseEndpoints(o.metrics)
	if err != nil {
		return nil, err
	}
	return &herald{o: o, c: c, eps: eps}, nil
}

// herald is the Herald target: publishing through the producer into the
// deployment's Redis, sampling every process's admin /metrics and Redis.
type herald struct {
	o    *heraldFlags
	c    targetCommon
	eps  []endpoint
	rdb  redis.UniversalClient
	prod *producer.Producer
}

func (h *herald) Name() string { return "herald" }

func (h *herald) Open(ctx context.Context) error {
	rdb, err := h.o.redis.client(ctx)
	if err != nil {
		return err
	}
	h.rdb = rdb
	h.prod = producer.New(rdb, producer.WithPrefix(h.o.redis.prefix), producer.WithPartitions(h.o.partitions))
	return nil
}

func (h *herald) Close(context.Context) error {
	if h.rdb == nil {
		return nil
	}
	return h.rdb.Close()
}

func (h *herald) WorkerArgs() []string {
	return append([]string{"--edges", h.o.edges, "--tenant", h.c.tenant}, h.o.wire.args()...)
}

func (h *herald) WorkerEnv() []string { return []string{secretEnv + "=" + h.o.secret} }

func (h *herald) Traits() Traits { return Traits{Acks: true, Resume: true, Keys: true} }

func (h *herald) PublishPersonal(ctx context.Context, evs []Event) ([]bool, error) {
	msgs := make([]producer.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = producer.Envelope(h.envelope(ev, events.ToUser("u"+strconv.Itoa(ev.User))))
	}
	ids, err := h.prod.PublishBatch(ctx, msgs)
	stored := make([]bool, len(evs))
	for i := range stored {
		stored[i] = i < len(ids) && ids[i] != ""
	}
	return stored, err
}

func (h *herald) PublishBroadcast(ctx context.Context, ev Event) error {
	_, err := h.prod.PublishEnvelope(ctx, h.envelope(ev, events.ToTenant()))
	return err
}

func (h *herald) envelope(ev Event, to events.Audience) events.Envelope {
	data := ev.Data
	if h.o.payload == payloadOrder {
		if d, ok := parsePayload(data); ok {
			data = withOrder(data, d.N)
		}
	}
	return events.Envelope{Type: loadType, Tenant: h.c.tenant, To: to, ID: ev.Key, Data: json.RawMessage(data)}
}

// Processes are the --metrics endpoints (an edge is the one whose name
// starts with "edge", or that reports herald_edge_sessions) and Redis,
// found by the process id in its INFO.
func (h *herald) Processes(ctx context.Context) ([]Process, error) {
	var ps []Process
	for _, ep := range h.eps {
		role := roleOther
		if strings.HasPrefix(ep.Name, "edge") {
			role = roleEdge
		}
		p := Process{Name: ep.Name, Role: role, Metrics: ep.URL}
		if role == roleEdge && h.o.dataDir != "" {
			p.DataDir = h.o.dataDir
		}
		ps = append(ps, p)
	}
	pid, err := redisPID(ctx, h.rdb)
	if err != nil {
		return ps, err
	}
	rdb := h.rdb
	read := func(ctx context.Context) (map[string]float64, error) { return redisInfo(ctx, rdb) }
	return append(ps, Process{Name: "redis", Role: roleRedis, PID: pid, Read: read}), nil
}

// redisInfo reads Redis's CPU seconds (used_cpu_sys + used_cpu_user) and
// RSS (used_memory_rss) from INFO, under the process metrics' names, and
// each command's calls and time from INFO commandstats (parseCommandStats).
func redisInfo(ctx context.Context, rdb redis.UniversalClient) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sections := []string{"cpu", "memory", "commandstats"}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		// one node answers, not always the same one: its commands are
		// not the deployment's
		sections = sections[:2]
	}
	info, err := rdb.Info(ctx, sections...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO: %w", err)
	}
	m := make(map[string]float64)
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if parseCommandStats(line, m) {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch k {
		case "used_cpu_user", "used_cpu_sys":
			m[metricCPU] += f
		case "used_memory_rss":
			m[metricRSS] = f
		}
	}
	return m, nil
}

// redisPID reads process_id from INFO server.
func redisPID(ctx context.Context, rdb redis.UniversalClient) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO server: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("redis INFO server has no process_id")
}
