#!/usr/bin/env bash
# setup-js.sh: makes sure the TypeScript SDK's tests can run: node (18 or
# later) and npm, Debian's chromium (driven headless by playwright-core),
# and the SDK's npm packages (clients/js/node_modules, from its lock file).
#
#   scripts/setup-js.sh           install what is missing (apt-get, npm ci)
#   scripts/setup-js.sh --check   exit 0 if everything is there; change nothing
#
# Installing packages needs apt-get and root (or sudo); npm needs the npm
# registry.
set -euo pipefail

cd "$(dirname "$0")/.."
js=clients/js

have() { command -v "$1" >/dev/null 2>&1; }
node_ok() { have node && have npm && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]; }
chromium_ok() { have chromium || [ -x /usr/bin/chromium ]; }
modules_ok() { [ -f "$js/node_modules/.package-lock.json" ] && ! [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; }
fail() {
	echo "setup-js: $*" >&2
	exit 1
}

if node_ok && chromium_ok && modules_ok; then
	exit 0
fi
if [ "${1:-}" = --check ]; then
	exit 1
fi

packages=()
node_ok || packages+=(nodejs npm)
chromium_ok || packages+=(chromium)
if [ ${#packages[@]} -gt 0 ]; then
	have apt-get || fail "missing ${packages[*]} and there is no apt-get; install them by hand"
	as_root=()
	if [ "$(id -u)" != 0 ]; then
		have sudo || fail "missing ${packages[*]}; run as root (or install sudo) so that apt-get can install them"
		as_root=(sudo)
	fi
	echo "setup-js: installing ${packages[*]} with apt-get"
	"${as_root[@]}" apt-get update -q || fail "apt-get update failed"
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" ||
		fail "apt-get install ${packages[*]} failed"
	node_ok || fail "node $(node --version 2>/dev/null || echo missing) is older than 18"
fi
if ! modules_ok; then
	echo "setup-js: npm ci in $js"
	(cd "$js" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci failed in $js"
fi
