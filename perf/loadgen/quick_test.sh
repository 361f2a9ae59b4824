#!/bin/bash
# boxoffice_bench_quick (meson test, suite bench-io): boxoffice-bench --quick
# against a real boxoffice-server, every workload, open and closed loop and
# one command per message; then the engine's audit after a restart. Fails
# when a run fails, sees an oversell, or the stores disagree with what the
# workers saw confirmed.
#
# usage: quick_test.sh SERVER BENCH
# The server listens on an ipc:// socket in a private directory: no port
# to collide with anything else on the machine.
set -euo pipefail

server=$1
bench=$2
python=/usr/bin/python3
dir=$(mktemp -d /tmp/bo-lgq.XXXXXX)
url="ipc://$dir/sock"
pid=""

stop_server() {
	if [[ -n $pid ]]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=""
	fi
}

cleanup() {
	stop_server
	rm -rf "$dir"
}
trap cleanup EXIT

# Starts the server on $dir/data (kept when $1 is "keep") and waits for its
# "ready" line: the listener is up and every shard recovered.
start_server() {
	if [[ ${1:-} != keep ]]; then
		rm -rf "$dir/data"
	fi
	: >"$dir/server.log"
	"$server" --data-dir "$dir/data" --listen "$url" --no-pg --shards 2 >>"$dir/server.log" 2>&1 &
	pid=$!
	local i
	for ((i = 0; i < 600; i++)); do
		if grep -q 'msg="ready"' "$dir/server.log"; then
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "server died:" >&2
			cat "$dir/server.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "server not ready after 60 s" >&2
	exit 1
}

# Checks the last JSON line of a run: requests made, no oversell, the
# audit agrees; $2 = max error rate allowed (flash is throttled by design).
check_run() {
	"$python" - "$1" "$2" <<'EOF'
import json, sys
line = open(sys.argv[1]).read().strip().splitlines()[-1]
j = json.loads(line)
bad = []
if j["requests"] <= 0: bad.append("no requests")
if j["oversell"] != 0: bad.append("oversell %d" % j["oversell"])
if j["audit"].get("agree") is not True: bad.append("audit %s" % j["audit"])
if j["error_rate"] > float(sys.argv[2]): bad.append("error_rate %g" % j["error_rate"])
for k in ("p50_ms", "p95_ms", "p99_ms", "p999_ms", "max_ms", "per_sec"):
    if not j[k] > 0: bad.append("%s %s" % (k, j[k]))
print("%-12s %-6s conns %3d depth %3d: %9.0f/s p99 %.2f ms, booked %s" % (j["workload"], j["mode"],
      j["conns"], j["depth"], j["per_sec"], j["p99_ms"], j["audit"].get("bench_booked")))
if bad:
    print("FAILED: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

run() { # max_error_rate, bench args...
	local max=$1
	shift
	start_server
	"$bench" --target "$url" --quick "$@" >"$dir/out.json"
	check_run "$dir/out.json" "$max"
	stop_server
}

run 0 --system boxoffice --workload normal --mode closed --conns 2 --depth 32
run 0 --system boxoffice --workload on-sale --mode open --rate 20000 --conns 2 --depth 64 --timeline
run 0 --system boxoffice --workload on-sale --mode closed --conns 8 --depth 1 --opt single=1
run 0 --system boxoffice --workload many-events --mode open --rate 20000 --conns 2 --depth 64
run 1 --system boxoffice --workload flash --mode closed --conns 2 --depth 64

# The engine's own figures after a restart (the read model is rebuilt from
# the recovered engine) must equal what the workers saw confirmed.
start_server
"$bench" --target "$url" --quick --system boxoffice --workload on-sale --conns 2 --depth 32 \
	>"$dir/run.json"
check_run "$dir/run.json" 0
stop_server
start_server keep
"$bench" --target "$url" --quick --system boxoffice --workload on-sale --audit-only \
	--opt as=engine >"$dir/audit.json"
"$python" - "$dir/run.json" "$dir/audit.json" <<'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
au = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])["audit"]
lo, hi = run["audit"]["bench_booked"], run["audit"]["bench_booked_max"]
print("engine_booked %s, workers saw %d..%d" % (au.get("engine_booked"), lo, hi))
if not (au.get("agree") and lo <= au.get("engine_booked", -1) <= hi):
    print("FAILED: engine audit %s" % au, file=sys.stderr)
    sys.exit(1)
EOF

# A bad command line is a usage error: exit 2, a message naming the option
# on stderr, nothing on stdout (no JSON line a script could take for a
# result), and no connection attempted.
bad_usage() {
	local rc=0
	"$bench" --target "$url" "$@" >"$dir/usage.out" 2>"$dir/usage.err" || rc=$?
	if [[ $rc -ne 2 || -s $dir/usage.out || ! -s $dir/usage.err ]]; then
		echo "FAILED: '$*' gave exit $rc (want 2), stdout:" >&2
		cat "$dir/usage.out" "$dir/usage.err" >&2
		exit 1
	fi
}
bad_usage --system boxoffice --conns 0
bad_usage --system boxoffice --conns abc
bad_usage --system boxoffice --depth 100000
bad_usage --system boxoffice --seats 0
bad_usage --system boxoffice --workload bogus
bad_usage --system bogus
bad_usage --system boxoffice --mode open
bad_usage --system boxoffice --mode open --rate -5
bad_usage --system boxoffice --mode sideways
bad_usage --system boxoffice --warmup x
bad_usage --system boxoffice --no-such-option
echo "usage errors: exit 2 with a message, nothing on stdout"
