#!/usr/bin/env bash
# loadtest.sh: measures Herald under load with `herald bench` on this machine
# and appends the figures to BENCHMARKS-load.md.
#
#   scripts/loadtest.sh                 the five scenarios at full size (about 15 min)
#   SMALL=1 scripts/loadtest.sh         a quick check: 1000 clients, 10 s runs
#   ONLY=idle,personal scripts/loadtest.sh      some of: idle personal throughput broadcast connect
#   RATES="20000 25000 30000 35000"         personal rates tried by throughput, in order,
#                                       until one misses (p99 < 100 ms, 0 lost)
#   CLIENTS, RATE, DURATION, IDLE_CLIENTS, SETTLE, BCAST_CLIENTS, CONNECT_CLIENTS
#                                       override the sizes below
#   OUT=file.md                         where to append (default BENCHMARKS-load.md)
#   PROFILE_DIR=dir                     where CPU profiles are kept (default bin/)
#
# Each scenario gets a fresh stack: a throwaway redis-server (no persistence)
# on a free loopback port, one `herald dispatcher` and one `herald edge`
# (connect rate limit off), each with its admin listener, so memory and CPU
# figures start from a clean process. Everything runs on this machine and
# talks over 127.0.0.0/8 only; every bench run stops by itself. A trap stops
# every process this script started, by PID, and deletes its files.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
SMALL=${SMALL:-0}
ONLY=${ONLY:-idle personal throughput broadcast connect}
ONLY=${ONLY//,/ }
OUT=${OUT:-$root/BENCHMARKS-load.md}
case $OUT in /*) ;; *) OUT=$root/$OUT ;; esac
PROFILE_DIR=${PROFILE_DIR:-$root/bin}
mkdir -p "$PROFILE_DIR"

# Sizes; each may be set from the environment.
if [ "$SMALL" = 1 ]; then
	: "${IDLE_CLIENTS:=1000}" "${SETTLE:=3s}" "${CLIENTS:=1000}" "${RATE:=1000}" "${DURATION:=10s}"
	: "${RATES:=2000 4000}" "${BCAST_CLIENTS:=1000}" "${CONNECT_CLIENTS:=1000}"
else
	: "${IDLE_CLIENTS:=15000}" "${SETTLE:=10s}" "${CLIENTS:=10000}" "${RATE:=10000}" "${DURATION:=60s}"
	: "${RATES:=20000 25000 30000 35000}" "${BCAST_CLIENTS:=10000}" "${CONNECT_CLIENTS:=10000}"
fi

go tool task setup
go build -o bin/herald ./cmd/herald
herald=$root/bin/herald

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-load.XXXXXX")
pids=()
# stop_all ends the processes of this script, newest first (edge, then
# dispatcher, then redis-server), each politely, then for good after 10 s.
stop_all() {
	local pid i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		pid=${pids[i]}
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}
cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
export HERALD_JWT_HS256_SECRET=$secret

# redis_port prints a loopback port below the ephemeral range (so no
# client socket holds it) that nothing listens on.
redis_port() {
	local p low
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	while :; do
		p=$((10000 + RANDOM % (low - 10000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# wait_line FILE TEXT: wait up to 30 s for TEXT in FILE.
wait_line() {
	for _ in $(seq 300); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "loadtest: no '$2' in $1 within 30s:" >&2
	tail -20 "$1" >&2
	exit 1
}

# addr_of FILE KEY: the address logged as KEY=host:port on the ready line.
addr_of() {
	grep -m1 -o "$2=127\.0\.0\.1:[0-9]*" "$1" | cut -d= -f2
}

# start_stack NAME: redis, dispatcher, edge; sets redis_url, ws, metrics.
# The dispatcher and the edge listen on ports the kernel picks, read from
# their ready lines.
start_stack() {
	local dir=$work/$1 rp try ok=0
	mkdir -p "$dir/redis"
	for try in 1 2 3 4 5; do
		rp=$(redis_port)
		redis-server --bind 127.0.0.1 --port "$rp" --save "" --appendonly no --dir "$dir/redis" \
			--logfile "$dir/redis.log" --daemonize no &
		pids+=($!)
		for _ in $(seq 50); do
			if redis-cli -p "$rp" ping 2>/dev/null | grep -q PONG; then
				ok=1
				break 2
			fi
			kill -0 "${pids[-1]}" 2>/dev/null || break
			sleep 0.1
		done
		echo "loadtest: redis-server on port $rp did not start (try $try)" >&2
	done
	[ $ok = 1 ] || exit 1
	redis_url=redis://127.0.0.1:$rp/0
	"$herald" dispatcher --redis-url "$redis_url" --admin-listen 127.0.0.1:0 >"$dir/dispatcher.log" 2>&1 &
	pids+=($!)
	wait_line "$dir/dispatcher.log" "dispatcher ready"
	HERALD_CONNECT_RATE_PER_IP=0 HERALD_MAX_CONNS_PER_USER=100000 \
		"$herald" edge --redis-url "$redis_url" --data-dir "$dir/edge" --listen 127.0.0.1:0 \
		--admin-listen 127.0.0.1:0 --drain-timeout 5s >"$dir/edge.log" 2>&1 &
	pids+=($!)
	wait_line "$dir/edge.log" "edge ready"
	ws=ws://$(addr_of "$dir/edge.log" listen)/ws
	metrics=edge=http://$(addr_of "$dir/edge.log" admin)/metrics,dispatcher=http://$(addr_of "$dir/dispatcher.log" admin)/metrics
}

# bench NAME ARGS...: one scenario on a fresh stack; its status is the bench's.
bench() {
	local name=$1 rc=0
	shift
	start_stack "$name"
	echo "== $name: herald bench $*" >&2
	"$herald" bench --label "$name" --edges "$ws" --redis-url "$redis_url" --metrics "$metrics" \
		--tenant "$name" --md "$OUT" "$@" || rc=$?
	# edge warnings and errors, if any, go with the figures
	if grep -Eq 'level=(WARN|ERROR)' "$work/$name/edge.log" "$work/$name/dispatcher.log"; then
		{
			echo
			echo "Warnings and errors logged by the edge and the dispatcher during $name (first 10):"
			echo
			echo '```'
			grep -hE 'level=(WARN|ERROR)' "$work/$name/edge.log" "$work/$name/dispatcher.log" | head -10
			echo '```'
		} >>"$OUT"
	fi
	stop_all
	return $rc
}

# top_profile NAME TITLE: the top functions of the CPU profile NAME (kept
# in PROFILE_DIR), into the report.
top_profile() {
	local file=$PROFILE_DIR/$1
	[ -s "$file" ] || return 0
	{
		echo
		echo "$2 (go tool pprof -top $file):"
		echo
		echo '```'
		go tool pprof -top -nodecount=25 "$herald" "$file" 2>/dev/null | head -32
		echo '```'
	} >>"$OUT"
}

wants() { [[ " $ONLY " == *" $1 "* ]]; }

{
	echo
	echo "## Load run $(date -u '+%Y-%m-%d %H:%M UTC')$([ "$SMALL" = 1 ] && echo ' (SMALL=1)')"
	echo
	echo "Script: \`$([ "$SMALL" = 1 ] && echo 'SMALL=1 ')scripts/loadtest.sh\` at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet -- . ':(exclude)BENCHMARKS-load.md' 2>/dev/null || echo ' (+ uncommitted changes)');"
	echo "$(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;"
	echo "$(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3), Linux $(uname -r)."
	echo "Settings: ONLY='$ONLY' IDLE_CLIENTS=$IDLE_CLIENTS SETTLE=$SETTLE CLIENTS=$CLIENTS RATE=$RATE DURATION=$DURATION RATES='$RATES' BCAST_CLIENTS=$BCAST_CLIENTS CONNECT_CLIENTS=$CONNECT_CLIENTS."
	echo "Redis, dispatcher, edge and the load generator share these cores, and other work may be running on the machine: see each run's load average."
} >>"$OUT"

status=0
if wants idle; then
	bench idle --mode idle --clients "$IDLE_CLIENTS" --settle "$SETTLE" || status=1
fi
if wants personal; then
	bench personal --mode personal --clients "$CLIENTS" --rate "$RATE" --duration "$DURATION" --slo-ms 20 \
		--cpu-profile "$PROFILE_DIR" || status=1
	top_profile edge-personal.pprof "Edge CPU profile, 10 s during the personal run"
	top_profile dispatcher-personal.pprof "Dispatcher CPU profile, 10 s during the personal run"
	top_profile worker0-personal.pprof "Load generator (worker 0) CPU profile, the whole personal run"
fi
if wants throughput; then
	for r in $RATES; do
		bench "throughput-$r" --mode personal --clients "$CLIENTS" --rate "$r" --duration "$DURATION" --slo-ms 100 \
			--cpu-profile "$PROFILE_DIR" || {
			top_profile "edge-throughput-$r.pprof" "Edge CPU profile at $r/s, the first rate missed"
			break
		}
	done
fi
if wants broadcast; then
	bench broadcast --mode broadcast --clients "$BCAST_CLIENTS" --rounds 20 --slo-ms 100 --cpu-profile "$PROFILE_DIR" || status=1
	top_profile edge-broadcast.pprof "Edge CPU profile during the broadcast rounds"
	# the same without client acks: how much of the time is the acks'
	# (client writes, edge reads and ACK bookkeeping) on these two cores
	bench broadcast-noack --mode broadcast --clients "$BCAST_CLIENTS" --rounds 20 --slo-ms 100 --no-ack || true
fi
if wants connect; then
	bench connect --mode connect --clients "$CONNECT_CLIENTS" || status=1
fi
echo "loadtest: figures appended to $OUT" >&2
exit $status
