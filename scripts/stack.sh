# shellcheck shell=bash
# Helpers shared by the load scripts (loadtest.sh, scale.sh), which source
# this file. They start processes, append their PIDs to the array pids,
# and read the addresses the processes log on their ready lines. Set
# script_name before sourcing, for the error messages.

pids=()

# stop_all ends the processes in pids, newest first (so an edge goes
# before the dispatcher and Redis it uses), each politely, then for good
# after 10 s.
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

# free_port [bus]: a loopback port below the ephemeral range (so that no
# client socket holds it) that nothing listens on; with "bus", its Redis
# Cluster bus port (the port + 10000) is free and below that range too.
free_port() {
	local p low span
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	span=$((low - 10000))
	[ "${1:-}" = bus ] && span=$((low - 20000))
	while :; do
		p=$((10000 + RANDOM % span))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			{ [ "${1:-}" != bus ] || ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; }; then
			echo "$p"
			return
		fi
	done
}

# wait_line FILE TEXT: wait up to 30 s for TEXT in FILE; else show the end
# of FILE and exit 1.
wait_line() {
	for _ in $(seq 300); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "${script_name:-stack}: no '$2' in $1 within 30s:" >&2
	tail -20 "$1" >&2
	exit 1
}

# addr_of FILE KEY: the address logged as KEY=host:port on the ready line.
addr_of() {
	grep -m1 -o "$2=127\.0\.0\.1:[0-9]*" "$1" | cut -d= -f2
}
