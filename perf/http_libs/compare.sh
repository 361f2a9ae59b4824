#!/usr/bin/env bash
#
# compare.sh — the measurement behind the HTTP front's library (perf/README.md,
# "HTTP library"): the same minimal keep-alive handler (a 34-byte JSON body)
# on libmicrohttpd (epoll thread), h2o (evloop, one thread) and nng's HTTP
# server, each driven by wrk with one thread and 50 connections, in turns,
# in the same run (only ratios measured together mean anything here).
#
# usage: perf/http_libs/compare.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
# Needs: wrk, gcc, libmicrohttpd-dev, libnng-dev, and for h2o libh2o-evloop-dev
# (not installed by scripts/setup: a library is skipped when it does not build).
# Prints one line per run, then one JSON object: each library's best rate.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
rounds=${1:-3}
secs=${2:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
libs=()
gcc -O2 -o "$out/mhd" "$here/mhd_hello.c" $(pkg-config --cflags --libs libmicrohttpd) && libs+=(mhd)
gcc -O2 -o "$out/nng" "$here/nng_hello.c" -lnng && libs+=(nng)
gcc -O2 -DH2O_USE_LIBUV=0 -o "$out/h2o" "$here/h2o_hello.c" $(pkg-config --cflags --libs libh2o-evloop) 2>/dev/null &&
	libs+=(h2o) || echo "h2o: not built (apt-get install libh2o-evloop-dev)" >&2
declare -A best
for r in $(seq 1 "$rounds"); do
	for l in "${libs[@]}"; do
		port=$((18000 + RANDOM % 1000))
		"$out/$l" "$port" &
		pid=$!
		for _ in $(seq 1 100); do
			curl -s -o /dev/null "http://127.0.0.1:$port/" && break
			sleep 0.05
		done
		res=$(wrk -t1 -c50 -d"${secs}s" --latency "http://127.0.0.1:$port/v1/x" 2>&1)
		kill "$pid"
		wait "$pid" 2>/dev/null || true
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$res")
		p99=$(awk '$1=="99%" {print $2}' <<<"$res")
		echo "round $r $l: $rps requests/s, p99 $p99"
		prev=${best[$l]:-0}
		if awk -v a="$rps" -v b="$prev" 'BEGIN {exit !(a > b)}'; then best[$l]=$rps; fi
	done
done
json="{\"bench\":\"http_libs\""
for l in "${libs[@]}"; do json+=",\"${l}_requests_per_sec\":${best[$l]}"; done
echo "$json}"
