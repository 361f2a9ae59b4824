#!/usr/bin/env bash
#
# php_example.sh — runs the PHP example client (examples/php/demo.php)
# against a boxoffice HTTP front and fails unless every answer is the one
# the demo expects (it asserts on each reply: hold 200, taken 409, another
# client's confirm 404, confirm 200, the resend replayed, the reads, a
# batch). The caller starts the server; this script only drives it.
#
# usage: tests/http/php_example.sh URL      e.g. http://127.0.0.1:7480
# Env: BOXOFFICE_TOKEN, the server's bearer token when it has one.
#
# Exit 0 when the demo passed; 1 when it failed (its output is shown), or
# when it did not notice a dead server (see below); 77 (skip) without
# php8.2-cli and php8.2-curl (scripts/setup installs both); 2 usage.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
log() { printf 'php_example: %s\n' "$*" >&2; }

[ $# -eq 1 ] || { log "usage: $0 URL"; exit 2; }
url=$1

if ! command -v php >/dev/null 2>&1; then
	log "SKIP: no php (install php8.2-cli php8.2-curl)"
	exit 77
fi
if ! php -r 'exit(extension_loaded("curl") ? 0 : 1);'; then
	log "SKIP: php has no curl extension (install php8.2-curl)"
	exit 77
fi

# The demo must be able to fail: against a port where nothing listens it
# has to exit non-zero (a demo that swallowed errors would pass anything).
if php "$root/examples/php/demo.php" "http://127.0.0.1:1" >/dev/null 2>&1; then
	log "FAIL: the demo passed against a closed port; it does not check its answers"
	exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! php "$root/examples/php/demo.php" "$url" >"$out" 2>&1; then
	cat "$out" >&2
	log "FAIL: examples/php/demo.php against $url"
	exit 1
fi
cat "$out" >&2
# The demo's last line says it went through every step.
grep -q '^demo: OK: held, confirmed and read event ' "$out" ||
	{ log "FAIL: the demo ended without its OK line"; exit 1; }
log "OK: the PHP example held, confirmed and read a seat at $url"
