#!/bin/bash
# sys_quick_test.sh (meson test boxoffice_bench_baselines_quick, suite
# bench-io): boxoffice-bench --quick against the PostgreSQL row-lock
# baseline (a private cluster started by scripts/pg: Unix socket in a
# private directory, no TCP port) and the bare nng echo (an ipc:// socket).
#
# Proves, for postgres: the single-request, pipelined (one transaction per
# round, and per request) and flash (best-available, SKIP LOCKED) runs
# complete with no oversell, no errors and the table's booked seats inside
# what the workers saw confirmed; --audit-only reads the same figures back
# without setup; an unreachable target is exit 1. For nng-echo: every
# request is answered (no error, no no_answer) unpipelined and 256 deep,
# and the echo server exits 0 on SIGTERM.
# Exit 77 (skipped) without PostgreSQL's binaries.
#
# usage: sys_quick_test.sh BENCH
set -euo pipefail

bench=$1
python=/usr/bin/python3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pg=$here/../../scripts/pg
pg_bin=${BO_PG_BIN:-/usr/lib/postgresql/15/bin}
dir=$(mktemp -d /tmp/bo-lgsys.XXXXXX)
# The cluster's user (postgres when we are root) must reach its directory.
chmod 755 "$dir"
echo_pid=""

cleanup() {
	if [[ -n $echo_pid ]]; then
		kill "$echo_pid" 2>/dev/null || true
		wait "$echo_pid" 2>/dev/null || true
	fi
	if [[ -d $dir/pg ]]; then
		"$pg" destroy "$dir/pg" >/dev/null 2>&1 || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

# Checks a run's last JSON line: $2 = "audit" to require the oversell
# audit and the store's agreement (postgres), "none" for the echo.
check_run() {
	"$python" - "$1" "$2" <<'EOF'
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
o = j["outcomes"]
bad = []
if j["requests"] <= 0 or not j["per_sec"] > 0: bad.append("no requests")
if o["error"] or o["no_answer"]: bad.append("outcomes %s" % o)
if sys.argv[2] == "audit":
    if j["oversell"] != 0: bad.append("oversell %d" % j["oversell"])
    if j["audit"].get("agree") is not True: bad.append("audit %s" % j["audit"])
    if "pgrowlock_booked" not in j["audit"]: bad.append("no pgrowlock_booked")
print("%-8s %-8s conns %2d depth %3d: %9.0f/s p99 %.2f ms %s" % (j["system"], j["workload"],
      j["conns"], j["depth"], j["per_sec"], j["p99_ms"], o))
if bad:
    print("FAILED: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
EOF
}

# ---- nng-echo ----------------------------------------------------------------
url="ipc://$dir/echo"
"$bench" --echo-server "$url" 2>"$dir/echo.log" &
echo_pid=$!
for ((i = 0; i < 100; i++)); do
	grep -q "listening" "$dir/echo.log" && break
	kill -0 "$echo_pid" || { cat "$dir/echo.log" >&2; exit 1; }
	sleep 0.1
done
"$bench" --system nng-echo --target "$url" --quick --workload on-sale --conns 4 --depth 1 >"$dir/e1.json"
check_run "$dir/e1.json" none
"$bench" --system nng-echo --target "$url" --quick --workload flash --conns 2 --depth 256 >"$dir/e2.json"
check_run "$dir/e2.json" none
kill -TERM "$echo_pid"
rc=0
wait "$echo_pid" || rc=$?
echo_pid=""
if [[ $rc -ne 0 ]]; then
	echo "FAILED: the echo server exited $rc on SIGTERM" >&2
	exit 1
fi

# ---- postgres ----------------------------------------------------------------
if [[ ! -x $pg_bin/initdb || ! -x $pg_bin/pg_ctl ]]; then
	echo "no PostgreSQL binaries in $pg_bin: postgres runs skipped"
	exit 77
fi
"$pg" start "$dir/pg" >/dev/null
dsn=$("$pg" dsn "$dir/pg")
pgrun() {
	"$bench" --system postgres --target "$dsn" --quick "$@" >"$dir/p.json"
	check_run "$dir/p.json" audit
}
pgrun --workload on-sale --conns 4 --depth 1
pgrun --workload on-sale --conns 4 --depth 16
pgrun --workload on-sale --conns 4 --depth 16 --opt sync=request
pgrun --workload flash --conns 4 --depth 8
# What the table says now is what the last run's audit said.
"$bench" --system postgres --target "$dsn" --quick --workload flash --audit-only >"$dir/a.json"
"$python" - "$dir/p.json" "$dir/a.json" <<'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["audit"]
au = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])["audit"]
print("audit-only pgrowlock_booked %s, the run's %s" % (au.get("pgrowlock_booked"), run["pgrowlock_booked"]))
if au.get("pgrowlock_booked") != run["pgrowlock_booked"]:
    print("FAILED: audit-only %s" % au, file=sys.stderr)
    sys.exit(1)
EOF
rc=0
"$bench" --system postgres --target "host=$dir/nowhere dbname=postgres" --quick \
	--workload on-sale >/dev/null 2>"$dir/bad.log" || rc=$?
if [[ $rc -ne 1 ]] || ! grep -q "cannot connect" "$dir/bad.log"; then
	echo "FAILED: an unreachable postgres gave exit $rc:" >&2
	cat "$dir/bad.log" >&2
	exit 1
fi
echo "ok"
