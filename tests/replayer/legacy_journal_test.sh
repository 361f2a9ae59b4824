#!/bin/bash
#
# legacy_journal_test.sh — proves that a journal written before claims were
# owned (command codec version 1, fixtures/journal-v1/README.md) still
# works with this build, and that the rule it predates holds from now on:
#  1. `boxoffice-replay verify` re-executes every record of the old journal
#     with identical results, although four of them are claim ops by a
#     client that did not make the claim (allowed then, refused now): the
#     decoder gives version 1 records the old any-client rule;
#  2. boxoffice-server recovers it (all 9 records) and serves its state;
#  3. the same kind of sequence sent today is refused: another client's
#     release/extend/confirm/cancel gets not_found, only --operator may
#     release or cancel, the owner still can;
#  4. the journal, now version 1 records followed by version 2 ones,
#     verifies again after the server stops.
#
# usage: legacy_journal_test.sh SERVER CLI REPLAY FIXTURE_DIR
set -euo pipefail

server=$1 cli=$2 replay=$3 fixture=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bo-legacy-journal.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "legacy_journal_test: $*" >&2
	[ -f "$tmp/server.log" ] && sed 's/^/  server: /' "$tmp/server.log" >&2
	exit 1
}

# The engine capacity the fixture was written with (README.md).
caps=(--seats-max 1024 --claims-max 64 --idem-capacity 64 --events-max 4)
cp -r "$fixture" "$tmp/data"
chmod -R u+w "$tmp/data"

# 1. The old journal verifies as it is.
"$replay" verify "$tmp/data" "${caps[@]}" --no-progress >"$tmp/verify1.out" 2>&1 ||
	{ cat "$tmp/verify1.out" >&2; fail "verify of the version 1 journal failed"; }
grep -q "OK: 9 records" "$tmp/verify1.out" || { cat "$tmp/verify1.out" >&2; fail "not 9 records"; }
"$replay" dump "$tmp/data" --no-progress >"$tmp/dump1.out"
# Its cross-client release (seq 3) decodes with the old rule.
grep -q "op=release client=2 .*claim=0x100000000 any_client=true -> ok" "$tmp/dump1.out" ||
	fail "the fixture's cross-client release (seq 3) is not an any_client record"

# 2. Recovery by today's server.
url="ipc://$tmp/s.ipc"
"$server" --data-dir "$tmp/data" --shards 1 --listen "$url" --no-pg --snapshot-every 0 \
	"${caps[@]}" --status-every 0 >"$tmp/server.log" 2>&1 &
pid=$!
# Wait for the event (the "ready" line), bounded so a hang fails.
for _ in $(seq 1 600); do
	grep -q 'msg="ready"' "$tmp/server.log" && break
	kill -0 "$pid" 2>/dev/null || fail "the server exited during recovery"
	sleep 0.05
done
grep -q 'msg="ready"' "$tmp/server.log" || fail "the server never became ready"
grep -q 'msg="shard recovered" shard=0 .*last_seq=9 ' "$tmp/server.log" ||
	fail "shard 0 did not recover the 9 records"

cli() { "$cli" --url "$url" "$@"; }
expect() { # expect CODE WANT_IN_STDOUT CLI-ARGS...
	local code=$1 want=$2 out rc=0
	shift 2
	out=$(cli "$@" 2>&1) || rc=$?
	[ "$rc" = "$code" ] || fail "\`boxoffice-cli $*\` exited $rc, expected $code: $out"
	case "$out" in
	*"$want"*) ;;
	*) fail "\`boxoffice-cli $*\`: \"$out\" lacks \"$want\"" ;;
	esac
}
# The recovered event (its holds may have expired since the fixture was
# written: the server's clock is the wall clock; what they were is proved
# by verify above).
expect 0 "event 7 at seq" status 7
expect 0 "10 seats:" status 7
expect 0 "of 20 free" status 7

# 3. Today's rule on the same kind of sequence: others are told the claim
# does not exist; the owner may; an operator may release or cancel.
hold_id() { # hold_id CLIENT SEAT: holds the seat, prints the hold id
	local out
	out=$(cli --client "$1" hold 7 --seats "$2") || fail "hold of seat $2: $out"
	out=${out##*hold=}
	echo "${out%% *}"
}
id=$(hold_id 1 5)
expect 1 "not_found" --client 2 extend 7 "$id" --ttl-ms 600000
expect 1 "not_found" --client 2 release 7 "$id"
expect 1 "not_found" --client 2 confirm 7 "$id" --payref today
expect 0 "seat 5: held" status 7 --seats 5
expect 0 "released hold=$id" --client 2 release 7 "$id" --operator
expect 0 "seat 5: free" status 7 --seats 5
id=$(hold_id 1 6)
expect 1 "not_found" --client 2 release 7 "$id"
expect 0 "confirmed booking=$id" --client 1 confirm 7 "$id" --payref today
expect 1 "not_found" --client 3 cancel 7 "$id"
expect 0 "seat 6: booked" status 7 --seats 6
expect 0 "cancelled booking=$id" --client 1 cancel 7 "$id"

kill -TERM "$pid"
wait "$pid" || fail "the server did not stop cleanly"
pid=

# 4. Old and new records together verify.
"$replay" verify "$tmp/data" "${caps[@]}" --no-progress >"$tmp/verify2.out" 2>&1 ||
	{ cat "$tmp/verify2.out" >&2; fail "verify of the mixed journal failed"; }
grep -q "OK: .* 19 commands" "$tmp/verify2.out" ||
	{ cat "$tmp/verify2.out" >&2; fail "not 9 old + 10 new commands"; }
"$replay" dump "$tmp/data" --no-progress >"$tmp/dump2.out"
grep -q "op=release client=2 .* -> not_found" "$tmp/dump2.out" ||
	fail "the refused release is not journaled as refused"
grep -q "op=release client=2 .* operator=true -> ok" "$tmp/dump2.out" ||
	fail "the operator's release is not journaled as one"
if grep -v "seq=[1-9] " "$tmp/dump2.out" | grep -q "any_client"; then
	fail "a record written today carries the legacy any-client rule"
fi
echo "legacy_journal_test: ok"
