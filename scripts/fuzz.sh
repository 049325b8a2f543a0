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
echo "fuzz: ${#targets[@]} targets, $fuzztime each"
for target in "${targets[@]}"; do
	read -r pkg name <<<"$target"
	echo "fuzz: $name in $pkg"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"
done
