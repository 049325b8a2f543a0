#!/usr/bin/env bash
# fuzz.sh: runs every Fuzz* target in the given packages for FUZZTIME each.
#
#   FUZZTIME=30s scripts/fuzz.sh [packages...]    (default: ./...)
#
# Targets are found with `go test -list '^Fuzz'`; each one runs alone in its
# package (go test -fuzz takes one target and one package at a time). New
# crashers are written to the package's testdata/fuzz/ and fail the run.
set -euo pipefail

fuzztime=${FUZZTIME:-30s}
[ $# -gt 0 ] || set -- ./...

# `go test -list` prints each package's matching names, then one
# "ok  <package>  <time>" line; it prints packages whole and in order.
listing=$(go test -run '^$' -list '^Fuzz' "$@")
targets=()
names=()
while IFS= read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for name in "${names[@]}"; do targets+=("$pkg $name"); done
		names=()
		;;
	esac
done <<<"$listing"

if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no Fuzz targets in $*"
	exit 0
fi
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime ends while a worker is mid-call
# (go.dev/issue/75804, fixed in Go 1.27): no input is written and nothing
# is wrong with the target. Such a run is tried again, twice at most; any
# other failure, or a written failing input, fails at once.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "fuzz: ${#targets[@]} targets, $fuzztime each"
for target in "${targets[@]}"; do
	read -r pkg name <<<"$target"
	for try in 1 2 3; do
		echo "fuzz: $name in $pkg"
		status=0
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" 2>&1 | tee "$log" || status=$?
		[ "$status" = 0 ] && break
		if [ "$try" -lt 3 ] && grep -q '^    context deadline exceeded$' "$log" && ! grep -q 'Failing input written' "$log" &&
			[ "$(grep -c -- '^--- FAIL' "$log")" = 1 ] && ! grep -qE '^\s+\S+_test\.go:[0-9]+:|panic:' "$log"; then
			echo "fuzz: $name: the coordinator's deadline race (go.dev/issue/75804), no failing input: again"
			continue
		fi
		exit "$status"
	done
done
