#!/usr/bin/env bash
# setup-redis.sh: makes sure redis-server and redis-cli are installed. Herald's
# tests, benchmarks and demo start their own redis-server processes
# (internal/redistest); nothing else is needed from the system.
#
#   scripts/setup-redis.sh           install with apt-get if missing
#   scripts/setup-redis.sh --check   exit 0 if present, 1 if not; change nothing
#
# It looks where internal/redistest looks: $PATH, /usr/bin, /usr/sbin,
# /usr/local/bin. Installing needs apt-get and root (or sudo).
set -euo pipefail

packages=(redis-server redis-tools)

have() {
	command -v "$1" >/dev/null 2>&1 && return 0
	local dir
	for dir in /usr/bin /usr/sbin /usr/local/bin; do
		[ -x "$dir/$1" ] && return 0
	done
	return 1
}
present() { have redis-server && have redis-cli; }
fail() {
	echo "setup: $*" >&2
	exit 1
}

if present; then
	exit 0
fi
if [ "${1:-}" = --check ]; then
	exit 1
fi

command -v apt-get >/dev/null 2>&1 ||
	fail "redis-server or redis-cli is missing and there is no apt-get here; install Redis 7 (Debian/Ubuntu packages: ${packages[*]}) and run again"
if [ "$(id -u)" = 0 ]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	fail "redis-server or redis-cli is missing; run as root (or install sudo) so that apt-get can install ${packages[*]}"
fi

echo "setup: installing ${packages[*]} with apt-get"
"${as_root[@]}" apt-get update -q ||
	fail "apt-get update failed; fix the apt sources, or install ${packages[*]} by hand"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${packages[@]}" ||
	fail "apt-get install ${packages[*]} failed"
present || fail "installed ${packages[*]}, but redis-server or redis-cli is still not found"
echo "setup: $(redis-server --version)"
