#!/usr/bin/env bash
# loadtest.sh: measures Herald under load with herald-load on this machine,
# against ONE stack started once, and writes the figures to a new file in
# benchmarks/results/ named by the run's start time (UTC).
#
#   scripts/loadtest.sh                 the whole run at full size (about 10 min):
#                                       connect + idle memory, personal ladder,
#                                       broadcast, reconnect storm
#   COMPARE=1 scripts/loadtest.sh       side by side (about 20-30 min; the default
#                                       of `go tool task bench:load`): the same run
#                                       against Herald, then Centrifugo v6 without
#                                       history, then with history on the personal
#                                       channels, and every figure as a ratio
#                                       (herald-load compare)
#   scripts/loadtest.sh soak            the soak (scripts/soak.sh): cycles of
#                                       clients that vanish abruptly
#   SMALL=1 scripts/loadtest.sh [soak]  a quick check: about 1000 clients, 10 s phases
#   WIRES='v1 v1+deflate v2+deflate' scripts/loadtest.sh
#                                       the run once per client wire (protocol, and
#                                       whether the clients offer permessage-deflate;
#                                       +takeover: offered as browsers do, so that an edge
#                                       with CONTEXT_TAKEOVER=true keeps its context),
#                                       each on a fresh stack, into one file, with a
#                                       table of each figure's ratio to the first wire's
#                                       (bytes the edge wrote, edge CPU per notification
#                                       at the last rate, RSS per idle connection)
#
#   wire: PROTOCOL=v1|v2 DEFLATE=true|false (the clients' handshake; WIRES sets both per run)
#         PAYLOAD=small|order (each event's data: about 45 bytes, or a realistic ~300-byte order)
#         COMPRESSION_THRESHOLD=n CONTEXT_TAKEOVER=true|false (the edge's --compression-* flags)
#
#   run:  SCENARIOS=connect,personal,... CLIENTS IDLE_CLIENTS RATES='2000,5000' DURATION
#         ACKS=each|batched:1s|none IDEMPOTENCY=true|false SLO_MS ROUNDS
#         REF_RATE (a personal rate measured for every target; COMPARE only)
#   soak: CYCLES CLIENTS WORKERS
#   OUT=file.md                         where to write (default benchmarks/results/<time>.md,
#                                       <time>-compare.md with COMPARE=1)
#   PROFILE_DIR=dir                     where CPU profiles are kept (default bin/profiles-<time>/)
#   HERALD_BIN=path                     a herald binary to test instead of building one
#                                       (an older commit's, to compare)
#
# The stack: a throwaway redis-server (no persistence) on a free loopback
# port, one `herald dispatcher` and one `herald edge` (connect rate limit
# off), each with its admin listener, started once and never restarted:
# every scenario of the run meets the same processes, warmed by the ones
# before, as a real deployment would. With COMPARE=1 herald-load then
# starts each Centrifugo variant once, on a redis-server of its own (the
# same settings), builds centrifugo into bin/ first if need be (a few
# minutes the first time), and stops them after their runs. Everything runs on this machine and
# talks over 127.0.0.0/8 only; herald-load stops by itself. A trap stops
# every process this script started, by PID, and deletes its files.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
MODE=${1:-run}
case $MODE in run | soak) ;; *)
	echo "usage: $0 [run|soak]" >&2
	exit 2
	;;
esac
SMALL=${SMALL:-0}
COMPARE=${COMPARE:-0}
[ "$MODE" = soak ] && COMPARE=0
stamp=$(date -u '+%Y-%m-%dT%H%MZ')
suffix=
[ "$MODE" = soak ] && suffix=-soak
[ "$COMPARE" = 1 ] && suffix=-compare
OUT=${OUT:-$root/benchmarks/results/$stamp$suffix.md}
case $OUT in /*) ;; *) OUT=$root/$OUT ;; esac
[ -e "$OUT" ] && OUT=${OUT%.md}-$(date -u +%S).md
PROFILE_DIR=${PROFILE_DIR:-$root/bin/profiles-$stamp}
mkdir -p "$PROFILE_DIR" "$(dirname "$OUT")"

# Sizes; each may be set from the environment.
if [ "$MODE" = soak ]; then
	if [ "$SMALL" = 1 ]; then
		: "${CYCLES:=3}" "${CLIENTS:=1000}"
	else
		: "${CYCLES:=10}" "${CLIENTS:=15000}"
	fi
	: "${WORKERS:=2}"
elif [ "$SMALL" = 1 ]; then
	: "${CLIENTS:=1000}" "${IDLE_CLIENTS:=1500}" "${RATES:=1000,2000,5000}" "${DURATION:=10s}" "${SETTLE:=3s}" "${ROUNDS:=10}" "${REF_RATE:=2000}"
else
	: "${CLIENTS:=10000}" "${IDLE_CLIENTS:=15000}" "${RATES:=2000,5000,10000,15000,20000,25000,30000}" "${DURATION:=60s}" "${SETTLE:=10s}" "${ROUNDS:=20}" "${REF_RATE:=10000}"
fi
# Every event carries an idempotency key by default, Herald's and
# Centrifugo's (its publish API's idempotency_key) alike.
: "${SCENARIOS:=connect,personal,broadcast,storm}" "${ACKS:=each}" "${IDEMPOTENCY:=true}" "${SLO_MS:=100}"
RATES=${RATES:-}
RATES=${RATES// /,}
: "${PROTOCOL:=v1}" "${DEFLATE:=false}" "${PAYLOAD:=small}" "${CONTEXT_TAKEOVER:=false}" "${COMPRESSION_THRESHOLD:=512}"
WIRES=${WIRES:-}
[ "$MODE" = soak ] && WIRES=
[ -n "$WIRES" ] && COMPARE=0

go tool task setup
mkdir -p bin
if [ -n "${HERALD_BIN:-}" ]; then
	herald=$HERALD_BIN
else
	go build -o bin/herald ./cmd/herald
	herald=$root/bin/herald
fi
go build -o bin/herald-load ./cmd/herald-load
load=$root/bin/herald-load

work=$(mktemp -d "${TMPDIR:-/tmp}/herald-load.XXXXXX")
script_name=loadtest
# shellcheck source=scripts/stack.sh
. scripts/stack.sh
cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
export HERALD_JWT_HS256_SECRET=$secret

# start_stack: redis, dispatcher, edge; sets redis_url, ws, metrics and
# data_dir. The dispatcher and the edge listen on ports the kernel picks,
# read from their ready lines.
start_stack() {
	local rp try ok=0
	mkdir -p "$work/redis"
	for try in 1 2 3 4 5; do
		rp=$(free_port)
		redis-server --bind 127.0.0.1 --port "$rp" --save "" --appendonly no --dir "$work/redis" \
			--logfile "$work/redis.log" --daemonize no &
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
	# pprof on the loopback admin listeners without a token (for --cpu-profile);
	# a variable rather than the flag, which older binaries (HERALD_BIN) lack
	export HERALD_PPROF_WITHOUT_TOKEN=true
	"$herald" dispatcher --redis-url "$redis_url" --admin-listen 127.0.0.1:0 >"$work/dispatcher.log" 2>&1 &
	pids+=($!)
	wait_line "$work/dispatcher.log" "dispatcher ready"
	data_dir=$work/edge
	HERALD_CONNECT_RATE_PER_IP=0 HERALD_MAX_CONNS_PER_USER=100000 \
		"$herald" edge --redis-url "$redis_url" --data-dir "$data_dir" --listen 127.0.0.1:0 \
		--admin-listen 127.0.0.1:0 --drain-timeout 5s --compression-threshold "$COMPRESSION_THRESHOLD" \
		--compression-context-takeover="$CONTEXT_TAKEOVER" >"$work/edge.log" 2>&1 &
	pids+=($!)
	wait_line "$work/edge.log" "edge ready"
	ws=ws://$(addr_of "$work/edge.log" listen)/ws
	metrics=edge=http://$(addr_of "$work/edge.log" admin)/metrics,dispatcher=http://$(addr_of "$work/dispatcher.log" admin)/metrics
}

# top_profile NAME TITLE: the top functions of the CPU profile NAME (kept
# in PROFILE_DIR), into the report.
top_profile() {
	local file=$PROFILE_DIR/$1 bin=${3:-$herald}
	[ -s "$file" ] || return 0
	{
		echo
		echo "$2 (go tool pprof -top $file):"
		echo
		echo '```'
		go tool pprof -top -nodecount=25 "$bin" "$file" 2>/dev/null | head -32 || true # head may close the pipe first
		echo '```'
	} >>"$OUT"
}

# warnings: the edge's and the dispatcher's warnings and errors, if any,
# go with the figures.
warnings() {
	if grep -Eq 'level=(WARN|ERROR)' "$work/edge.log" "$work/dispatcher.log"; then
		{
			echo
			echo "Warnings and errors logged by the edge and the dispatcher (first 10):"
			echo
			echo '```'
			grep -hE 'level=(WARN|ERROR)' "$work/edge.log" "$work/dispatcher.log" | head -10 || true # head may close the pipe first
			echo "($(cat "$work/edge.log" "$work/dispatcher.log" | grep -cE 'level=(WARN|ERROR)' || true) in all)"
			echo '```'
		} >>"$OUT"
	fi
}

{
	if [ "$MODE" = soak ]; then
		echo "## Soak $(date -u '+%Y-%m-%d %H:%M UTC')$([ "$SMALL" = 1 ] && echo ' (SMALL=1)')"
	elif [ "$COMPARE" = 1 ]; then
		echo "## Side by side: Herald and Centrifugo, $(date -u '+%Y-%m-%d %H:%M UTC')$([ "$SMALL" = 1 ] && echo ' (SMALL=1)')"
	else
		echo "## Load run $(date -u '+%Y-%m-%d %H:%M UTC')$([ "$SMALL" = 1 ] && echo ' (SMALL=1)')"
	fi
	echo
	echo "Script: \`$([ "$COMPARE" = 1 ] && echo 'COMPARE=1 ')$([ "$SMALL" = 1 ] && echo 'SMALL=1 ')scripts/loadtest.sh $MODE\` at $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet -- . ':(exclude)benchmarks' 2>/dev/null || echo ' (+ uncommitted changes)')$([ -n "${HERALD_BIN:-}" ] && echo ", herald binary $HERALD_BIN");"
	echo "$(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg) at start;"
	echo "$(go version | cut -d' ' -f3), $(redis-server --version | cut -d' ' -f3), Linux $(uname -r)."
	if [ "$MODE" = soak ]; then
		echo "Settings: CYCLES=$CYCLES CLIENTS=$CLIENTS WORKERS=$WORKERS."
	else
		echo "Settings: SCENARIOS=$SCENARIOS CLIENTS=$CLIENTS IDLE_CLIENTS=$IDLE_CLIENTS RATES=$RATES DURATION=$DURATION SETTLE=$SETTLE ROUNDS=$ROUNDS ACKS=$ACKS IDEMPOTENCY=$IDEMPOTENCY SLO_MS=$SLO_MS$([ "$COMPARE" = 1 ] && echo " REF_RATE=$REF_RATE")."
		echo "Wire: $([ -n "$WIRES" ] && echo "WIRES='$WIRES'" || echo "PROTOCOL=$PROTOCOL DEFLATE=$DEFLATE") PAYLOAD=$PAYLOAD; edge --compression-threshold $COMPRESSION_THRESHOLD --compression-context-takeover=$CONTEXT_TAKEOVER."
	fi
	if [ -n "$WIRES" ]; then
		echo "A fresh stack (redis-server, herald dispatcher, herald edge) for each wire. Redis, dispatcher, edge and the load generator share these cores, and other work may be running on the machine: see each phase's load average."
	else
		echo "One stack (redis-server, herald dispatcher, herald edge) for the whole run. Redis, dispatcher, edge and the load generator share these cores, and other work may be running on the machine: see each phase's load average."
	fi
	if [ "$COMPARE" = 1 ]; then
		echo "Then Centrifugo (internal/loadtest/centrifugo, built into bin/) without history, then with history on the personal channels: one node and one redis-server of its own each (herald-load starts them once per variant), the same clients and scenarios; the Herald stack stays up, idle, meanwhile."
	fi
} >"$OUT"

# wire_figure FILE KEY: the last value of KEY in the JSON line of a run's stdout.
wire_figure() {
	tail -1 "$1" | grep -o "\"$2\":[0-9.e+-]*" | tail -1 | cut -d: -f2
}

# wire_runs: the run once per wire of WIRES, each on a fresh stack, then
# the ratio table.
wire_runs() {
	local wire proto deflate takeover first=1 rc
	local -a names bytes cpu rss
	for wire in $WIRES; do
		proto=${wire%%+*}
		deflate=false takeover=false
		[[ $wire == *+deflate* ]] && deflate=true
		[[ $wire == *+takeover ]] && takeover=true
		[ $first = 1 ] || stop_all
		first=0
		start_stack
		echo "== run ($wire): herald-load run --protocol $proto --deflate=$deflate --deflate-context-takeover=$takeover --payload $PAYLOAD" >&2
		{ echo; echo "### Wire $wire (--protocol $proto --deflate=$deflate --deflate-context-takeover=$takeover)"; } >>"$OUT"
		rc=0
		"$load" run --edges "$ws" --redis-url "$redis_url" --metrics "$metrics" --edge-data-dir "$data_dir" \
			--scenarios "$SCENARIOS" --clients "$CLIENTS" --idle-clients "$IDLE_CLIENTS" --rates "$RATES" \
			--duration "$DURATION" --settle "$SETTLE" --rounds "$ROUNDS" --acks "$ACKS" --idempotency="$IDEMPOTENCY" \
			--slo-ms "$SLO_MS" --protocol "$proto" --deflate="$deflate" --deflate-context-takeover="$takeover" \
			--payload "$PAYLOAD" --label "wire $wire" --cpu-profile "$PROFILE_DIR/$wire" --md "$OUT" | tee "$work/$wire.out" || rc=$?
		top_profile "$wire/edge-personal-${RATES##*,}.pprof" "Edge CPU profile ($wire), 10 s at ${RATES##*,}/s"
		[ $rc = 0 ] || status=$rc
		names+=("$wire")
		bytes+=("$(wire_figure "$work/$wire.out" edge_wire_bytes_per_notification)")
		cpu+=("$(wire_figure "$work/$wire.out" edge_cpu_per_notification_us)")
		rss+=("$(wire_figure "$work/$wire.out" rss_per_conn_b)")
	done
	{
		echo
		echo "### Wires side by side (ratios to ${names[0]}, within this run)"
		echo
		echo "| wire | bytes written per notification | ratio | edge CPU per notification (last rate) | ratio | RSS per idle connection | ratio |"
		echo "|---|---|---|---|---|---|---|"
		local i
		for i in "${!names[@]}"; do
			awk -v n="${names[i]}" -v b="${bytes[i]:-0}" -v b0="${bytes[0]:-0}" -v c="${cpu[i]:-0}" -v c0="${cpu[0]:-0}" \
				-v r="${rss[i]:-0}" -v r0="${rss[0]:-0}" 'function ratio(x, y) { return y > 0 ? sprintf("%.2f", x / y) : "n/a" }
				BEGIN { printf "| %s | %.1f B | %s | %.1f µs | %s | %.0f B | %s |\n", n, b, ratio(b, b0), c, ratio(c, c0), r, ratio(r, r0) }'
		done
	} | tee -a "$OUT" >&2
}

status=0
if [ -n "$WIRES" ]; then
	wire_runs
	warnings
	echo "loadtest: figures written to $OUT" >&2
	exit $status
fi
start_stack
if [ "$MODE" = soak ]; then
	echo "== soak: herald-load soak --cycles $CYCLES --clients $CLIENTS --workers $WORKERS" >&2
	"$load" soak --edges "$ws" --redis-url "$redis_url" --metrics "$metrics" --edge-data-dir "$data_dir" \
		--cycles "$CYCLES" --clients "$CLIENTS" --workers "$WORKERS" --md "$OUT" || status=$?
elif [ "$COMPARE" = 1 ]; then
	echo "== compare: herald-load compare --scenarios $SCENARIOS --clients $CLIENTS" >&2
	"$load" compare --targets herald,centrifugo,centrifugo-history --centrifugo-bin-dir "$root/bin" \
		--edges "$ws" --redis-url "$redis_url" --metrics "$metrics" --edge-data-dir "$data_dir" \
		--scenarios "$SCENARIOS" --clients "$CLIENTS" --idle-clients "$IDLE_CLIENTS" --rates "$RATES" --ref-rate "$REF_RATE" \
		--duration "$DURATION" --settle "$SETTLE" --rounds "$ROUNDS" --acks "$ACKS" --idempotency="$IDEMPOTENCY" \
		--slo-ms "$SLO_MS" --cpu-profile "$PROFILE_DIR" --md "$OUT" || status=$?
	top_profile herald/edge-connect.pprof "Herald edge CPU profile, 2 s of connection set-up (the idle clients connecting)"
	top_profile "herald/edge-personal-$REF_RATE.pprof" "Herald edge CPU profile, 10 s at $REF_RATE/s"
	top_profile herald/edge-broadcast.pprof "Herald edge CPU profile during the broadcast rounds"
else
	echo "== run: herald-load run --scenarios $SCENARIOS --clients $CLIENTS" >&2
	"$load" run --edges "$ws" --redis-url "$redis_url" --metrics "$metrics" --edge-data-dir "$data_dir" \
		--scenarios "$SCENARIOS" --clients "$CLIENTS" --idle-clients "$IDLE_CLIENTS" --rates "$RATES" \
		--duration "$DURATION" --settle "$SETTLE" --rounds "$ROUNDS" --acks "$ACKS" --idempotency="$IDEMPOTENCY" \
		--slo-ms "$SLO_MS" --protocol "$PROTOCOL" --deflate="$DEFLATE" --payload "$PAYLOAD" \
		--cpu-profile "$PROFILE_DIR" --md "$OUT" || status=$?
	# the profiles of the last rate the ladder climbed (the first missed, or the top)
	last=$(grep -o '== personal [0-9]*/s' "$OUT" | tail -1 | grep -o '[0-9][0-9]*' || true)
	if [ -n "$last" ]; then
		top_profile "edge-personal-$last.pprof" "Edge CPU profile, 10 s at $last/s (the last rate the ladder climbed)"
		top_profile "dispatcher-personal-$last.pprof" "Dispatcher CPU profile, 10 s at $last/s"
	fi
	top_profile edge-connect.pprof "Edge CPU profile, 2 s of connection set-up (the idle clients connecting)"
	top_profile edge-broadcast.pprof "Edge CPU profile during the broadcast rounds"
	top_profile worker0-main.pprof "Load generator (worker 0) CPU profile, the whole run" "$load"
fi
warnings
echo "loadtest: figures written to $OUT" >&2
exit $status
