# shellcheck shell=bash
#
# lib.sh — helpers shared by scripts/setup, test, bench and run. Sourced, never run.
#
# Everything the scripts say goes to stderr, so that a benchmark's stdout stays
# machine-readable (scripts/bench promises its last stdout line is JSON).

# The repository root, whatever the caller's working directory.
BO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export BO_ROOT

# The build directories scripts/setup knows, in the order it builds them.
BO_BUILDS_ALL=(build build-asan build-tsan)

bo_log() {
	printf '%s: %s\n' "${BO_PROG:-boxoffice}" "$*" >&2
}

bo_die() {
	bo_log "error: $*"
	exit 1
}

# Runs a command as root: directly when we are root, through sudo otherwise.
bo_as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		bo_die "need root for '$*' and sudo is not installed; run as root"
	fi
}

# True when running under CI (CI=true, as GitHub, GitLab and .ci/run set it).
bo_is_ci() {
	case "${CI:-}" in
	true | TRUE | True | 1 | yes) return 0 ;;
	*) return 1 ;;
	esac
}

# Maps a user's name for a build dir to its directory: "asan" -> build-asan.
# Prints nothing and fails for an unknown name.
bo_build_dir_name() {
	case "$1" in
	build | plain | normal) echo build ;;
	build-asan | asan) echo build-asan ;;
	build-tsan | tsan) echo build-tsan ;;
	*) return 1 ;;
	esac
}

# Turns a list like "build,asan tsan" into canonical dir names, one per line,
# in BO_BUILDS_ALL order and without repeats. Dies on an unknown name.
bo_parse_builds() {
	local word dir want=() d
	for word in ${1//,/ }; do
		dir=$(bo_build_dir_name "$word") ||
			bo_die "unknown build dir '$word' (known: ${BO_BUILDS_ALL[*]}, or asan, tsan)"
		want+=("$dir")
	done
	[ "${#want[@]}" -gt 0 ] || bo_die "empty list of build dirs"
	for d in "${BO_BUILDS_ALL[@]}"; do
		for dir in "${want[@]}"; do
			if [ "$dir" = "$d" ]; then
				echo "$d"
				break
			fi
		done
	done
}
