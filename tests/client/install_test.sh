#!/bin/sh
#
# install_test.sh — proves that libboxoffice-client works as installed, not
# only from the build tree:
#  - `meson install --destdir` puts <boxoffice/boxoffice.h>, the base/ headers
#    it includes and the shared library where a program finds them;
#  - a small C program that includes only <boxoffice/boxoffice.h> compiles
#    against the installed include directory with -Wall -Wextra -Werror,
#    links against the installed .so, runs and gets the library's answers
#    (names, a seat map built and checked, a command built);
#  - the .so exports exactly the functions its installed headers declare
#    (client/boxoffice-client.map): nothing of the wire codec or the logger
#    leaks out, and nothing declared is missing.
#
# usage: install_test.sh BUILD_DIR CC MESON NM [SANITIZE]
#   SANITIZE is meson's b_sanitize ("none" or e.g. "address,undefined"): the
#   program is built the same way so that it can load a sanitized library.
set -eu

build=$1 cc=$2 meson=$3 nm=$4 sanitize=${5:-none}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bo-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
	echo "install_test: $*" >&2
	exit 1
}

"$meson" install -C "$build" --destdir "$tmp/root" --no-rebuild >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "meson install failed"; }

header=$(find "$tmp/root" -path '*/include/boxoffice/boxoffice.h' | head -n 1)
[ -n "$header" ] || fail "no include/boxoffice/boxoffice.h installed"
incdir=${header%/boxoffice/boxoffice.h}
so=$(find "$tmp/root" -name 'libboxoffice-client.so' | head -n 1)
[ -n "$so" ] || fail "no libboxoffice-client.so installed"
libdir=$(dirname "$so")

cat >"$tmp/prog.c" <<'PROG'
#include <boxoffice/boxoffice.h>

#include <stdio.h>

int main(void)
{
	bo_seatmap *m = bo_seatmap_new(1, 4, 1);
	if (!m)
		return 1;
	m->category_count = 1;
	m->rows[0].section = 1;
	m->rows[0].seats = 4;
	m->pool_capacity[0] = 10;
	bo_cmd cmd;
	boc_create_event(&cmd, 1, 2, 9, m);
	printf("%s %s %s %u\n", boc_op_name(cmd.op), bo_detail_name(bo_seatmap_check(m)),
	       boc_status_name(BO_TAKEN), (unsigned)BO_SEATS_PER_HOLD_MAX);
	bo_seatmap_free(m);
	return 0;
}
PROG

san=
[ "$sanitize" = none ] || san="-fsanitize=$sanitize"
# shellcheck disable=SC2086 # $cc may be a command with arguments, $san empty
$cc -std=c11 -Wall -Wextra -Werror $san -I"$incdir" "$tmp/prog.c" -L"$libdir" \
	-lboxoffice-client -o "$tmp/prog" || fail "the installed header does not compile"
out=$(LD_LIBRARY_PATH=$libdir "$tmp/prog") || fail "the program linked to the installed .so failed"
[ "$out" = "create_event none taken 16" ] || fail "unexpected output '$out'"

# Exported: the defined dynamic symbols, version suffix cut. Declared: the
# first identifier before '(' of every line of the installed headers that
# starts a declaration (not typedefs, not static inline helpers).
"$nm" -D --defined-only "$so" | awk 'NF == 3 && $2 ~ /^[TW]$/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u >"$tmp/exported"
find "$incdir/boxoffice" -name '*.h' -exec cat {} + |
	grep -E '^[a-z]' | grep -vE '^(static|typedef|struct|enum|union)\b' |
	sed -nE 's/^[^(]*[^a-z0-9_]((boc|bo)_[a-z0-9_]+)\(.*/\1/p' | sort -u >"$tmp/declared"
[ -s "$tmp/declared" ] || fail "found no declarations in the installed headers"
if ! diff "$tmp/declared" "$tmp/exported" >"$tmp/diff"; then
	sed 's/^</declared, not exported:/; s/^>/exported, not declared:/' "$tmp/diff" | grep -E '^(declared|exported)' >&2
	fail "the .so's exports differ from its headers (client/boxoffice-client.map)"
fi
echo "install_test: $(wc -l <"$tmp/exported") exported functions, all declared; program ran: $out"
