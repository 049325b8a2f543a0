#!/usr/bin/env bash
# Connection scale on one machine (issue 15): CLIENTS (default 50,000)
# WebSocket clients across three `herald edge` processes (one process may
# hold about 19,000: the open-files cap is 20,000) on a three-master Redis
# Cluster, with one dispatcher over 4 ingest partitions; herald-load
# connects them (one worker process per 18,000 clients, from many 127.x
# source addresses), holds them idle, then sends personal notifications and
# broadcasts to all of them. Redis CPU is read from each master's INFO.
# Then the feed appends' throughput on one Redis and on a three-master
# cluster (BenchmarkAppendSingleVsCluster), side by side.
#
#   go tool task bench:scale        (or: CLIENTS=50000 RATES=2000 scripts/scale.sh)
#
# Everything runs on loopback and stops by itself; a trap stops every
# process the script started, by PID, and deletes its files. The report
# goes to benchmarks/results/<time>-scale.md.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
CLIENTS=${CLIENTS:-50000}
RATES=${RATES:-2000,5000}
DURATION=${DURATION:-30s}
stamp=$(date -u '+%Y-%m-%dT%H%MZ')
OUT=${OUT:-$root/benchmarks/results/$stamp-scale.md}
work=$(mktemp -d /tmp/herald-scale.XXXXXX)
script_name=scale
# shellcheck source=scripts/stack.sh
. scripts/stack.sh
cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT

bash scripts/setup-redis.sh --check >/dev/null 2>&1 || bash scripts/setup-redis.sh
go build -o bin/herald ./cmd/herald
go build -o bin/herald-load ./cmd/herald-load

ports=()
for i in 0 1 2; do
	p=$(free_port bus)
	ports+=("$p")
	mkdir -p "$work/r$p"
	redis-server --bind 127.0.0.1 --port "$p" --cluster-enabled yes --cluster-config-file "$work/r$p/nodes.conf" \
		--cluster-announce-ip 127.0.0.1 --save "" --appendonly no --dir "$work/r$p" --logfile "$work/r$p.log" --daemonize no &
	pids+=($!)
done
for p in "${ports[@]}"; do
	for _ in $(seq 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
redis-cli -p "${ports[0]}" cluster addslotsrange 0 5460 >/dev/null
redis-cli -p "${ports[1]}" cluster addslotsrange 5461 10922 >/dev/null
redis-cli -p "${ports[2]}" cluster addslotsrange 10923 16383 >/dev/null
redis-cli -p "${ports[0]}" cluster meet 127.0.0.1 "${ports[1]}" >/dev/null
redis-cli -p "${ports[0]}" cluster meet 127.0.0.1 "${ports[2]}" >/dev/null
for p in "${ports[@]}"; do
	for _ in $(seq 300); do redis-cli -p "$p" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
done
url="redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"

export HERALD_PPROF_WITHOUT_TOKEN=true
HERALD_JWT_HS256_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
export HERALD_JWT_HS256_SECRET
bin/herald dispatcher --redis-url "$url" --partitions 4 --admin-listen 127.0.0.1:0 >"$work/dispatcher.log" 2>&1 &
pids+=($!)
wait_line "$work/dispatcher.log" "dispatcher ready"
metrics=dispatcher=http://$(addr_of "$work/dispatcher.log" admin)/metrics
edges=
for i in 1 2 3; do
	HERALD_CONNECT_RATE_PER_IP=0 bin/herald edge --edge-id "e$i" --redis-url "$url" --data-dir "$work/edge$i" \
		--listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --drain-timeout 5s >"$work/edge$i.log" 2>&1 &
	pids+=($!)
	wait_line "$work/edge$i.log" "edge ready"
	edges=$edges${edges:+,}ws://$(addr_of "$work/edge$i.log" listen)/ws
	metrics=$metrics,edge$i=http://$(addr_of "$work/edge$i.log" admin)/metrics
done

redis_cpu() {
	local total=0 p c
	for p in "${ports[@]}"; do
		c=$(redis-cli -p "$p" info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {print s}')
		total=$(awk -v a="$total" -v b="$c" 'BEGIN {print a + b}')
	done
	echo "$total"
}

mkdir -p "$(dirname "$OUT")"
{
	echo "## Scale run $(date -u '+%Y-%m-%d %H:%M UTC'): $CLIENTS clients, 3 edges, 3-master Redis Cluster"
	echo
	echo "Script: \`CLIENTS=$CLIENTS RATES=$RATES DURATION=$DURATION scripts/scale.sh\` at $(git rev-parse --short HEAD)$(git diff --quiet -- . ':(exclude)benchmarks' || echo ' (+ uncommitted changes)');"
	echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start. Redis Cluster masters on ports ${ports[*]}."
	echo
} >>"$OUT"
cpu0=$(redis_cpu)
t0=$(date +%s.%N)
status=0
bin/herald-load run --edges "$edges" --redis-url "$url" --partitions 4 --metrics "$metrics" \
	--scenarios connect,personal,broadcast --clients "$CLIENTS" --idle-clients "$CLIENTS" \
	--rates "$RATES" --ladder-all --duration "$DURATION" --rounds 10 --settle 10s --md "$OUT" || status=$?
cpu1=$(redis_cpu)
t1=$(date +%s.%N)
{
	echo
	echo "Redis Cluster CPU over the whole run (3 masters, INFO used_cpu_sys + used_cpu_user): $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.1f", b - a}') s in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", b - a}') s."
	for i in 1 2 3; do
		echo "edge e$i: $(grep -c 'level=WARN' "$work/edge$i.log" || true) warnings logged"
	done
} >>"$OUT"
# The same appends on one Redis and on a three-master cluster, in this run.
{
	echo
	echo "Append throughput, one Redis against a three-master cluster (\`go test -run '^\$' -bench AppendSingleVsCluster -benchtime 300x -count 2 ./internal/feed/\`):"
	echo
	echo '```'
	go test -run '^$' -bench AppendSingleVsCluster -benchtime 300x -count 2 ./internal/feed/ 2>&1 | grep -E '^Benchmark' || true
	echo '```'
} >>"$OUT"
echo "scale: report in $OUT"
exit $status
