# shellcheck shell=bash
# Sourced by the benchmarks. BENCH_PROFILE picks the build they measure:
# `release` (the default) for figures, `debug` to check cheaply that a script
# still runs (scripts/test runs every benchmark so, once, at a minimal size).
# `bin NAME` is the path of a built binary (`examples/apply` for an example),
# in CARGO_TARGET_DIR when it is set, as cargo puts it.
case "${BENCH_PROFILE:-release}" in
  release) cargo_profile=(--release) profile_dir=release ;;
  debug) cargo_profile=() profile_dir=debug ;;
  *) echo "BENCH_PROFILE must be release or debug, not ${BENCH_PROFILE}" >&2; exit 2 ;;
esac
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin() { echo "$target_dir/$profile_dir/$1"; }
# cargo build in the chosen profile, quietly.
build() { cargo build --quiet --locked "${cargo_profile[@]}" "$@"; }
