#!/usr/bin/env bash
#
# check_layers_test.sh — proves that scripts/check-layers guards the layers:
# it passes on the repository's tree, and fails, naming the offending
# #include line, on copies of the tree where one file reaches up (engine/
# including gateway/), sideways (client/ including shard/), into a library
# its layer must not use (<pthread.h> in engine/), or through a
# folder-relative include that resolves elsewhere, or into another folder's
# private *_internal.h.
#
# Usage: check_layers_test.sh SOURCE_ROOT

set -euo pipefail

src=${1:?usage: check_layers_test.sh SOURCE_ROOT}
check="$src/scripts/check-layers"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

# A copy of the layered folders (sources only).
copy_tree() {
	local to=$1 d
	mkdir -p "$to"
	for d in base engine journal shard protocol gateway client replayer; do
		[ -d "$src/$d" ] || continue
		mkdir -p "$to/$d"
		find "$src/$d" -maxdepth 1 \( -name '*.c' -o -name '*.h' \) -exec cp {} "$to/$d/" \;
	done
}

# expect_fail NAME FILE LINE: plant LINE at the top of FILE in a fresh copy;
# check-layers must exit 1 and print FILE with the planted line.
expect_fail() {
	local name=$1 file=$2 line=$3 out rc=0
	local root="$tmp/$name"
	copy_tree "$root"
	[ -f "$root/$file" ] || { fail "$name: $file does not exist in the tree"; return; }
	{ echo "$line"; cat "$root/$file"; } >"$root/$file.new"
	mv "$root/$file.new" "$root/$file"
	out=$("$check" --root "$root" 2>&1) || rc=$?
	if [ "$rc" -ne 1 ]; then
		fail "$name: exit $rc, want 1 (output: $out)"
	elif ! grep -qF "$file:1: $line" <<<"$out"; then
		fail "$name: the offending line is not named (output: $out)"
	else
		echo "ok: $name refused: $(grep -F "$file:1:" <<<"$out")"
	fi
}

# The real tree is clean.
if out=$("$check" --root "$src" 2>&1); then
	echo "ok: the tree passes ($out)"
else
	fail "the repository's tree does not pass: $out"
fi

expect_fail up engine/engine.c '#include "gateway/gateway.h"'
expect_fail sideways client/client.c '#include "shard/shard.h"'
expect_fail journal-knows-commands journal/journal.c '#include "engine/codec.h"'
expect_fail engine-threads engine/engine.c '#include <pthread.h>'
expect_fail internal-header shard/shard.c '#include "engine/engine_internal.h"'
expect_fail relative-elsewhere engine/codec.c '#include "wire.h"'

if [ "$fails" -ne 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
