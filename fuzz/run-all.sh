#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for a bounded time from its committed seeds
# (fuzz/corpus/<target>/), keeping what it finds in fuzz/work/<target>/ (not committed).
# Fails at the first crash; cargo-fuzz leaves the input in fuzz/artifacts/<target>/.
#
#   fuzz/run-all.sh                  # 15 s per target
#   FUZZ_SECONDS=60 fuzz/run-all.sh
#   FUZZ_RUNS=10000000 fuzz/run-all.sh v2_commands   # a fixed number of executions instead
#   FUZZ_PROFILE=dev fuzz/run-all.sh # unoptimised: builds in a fraction of the time, runs slower
#   FUZZ_SANITIZER=none fuzz/run-all.sh  # without AddressSanitizer: faster, for long runs
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"

# Every target, in one place.
TARGETS=(
  v2_commands
  lookupd_commands
  http_publish
  http_config
  nsqd_dat
  config_file
  segment_log
  cursor_file
  snappy
  deflate
)
if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
fi

# A single allocation over 256 MiB is a bug in any of these parsers: no input they take
# justifies it (the decoders' bodies and chunks are bounded far below).
flags=(-malloc_limit_mb=256 -rss_limit_mb=2048 -print_final_stats=1)
if [ -n "${FUZZ_RUNS:-}" ]; then
  flags+=(-runs="$FUZZ_RUNS")
else
  flags+=(-max_total_time="${FUZZ_SECONDS:-15}")
fi

# The same profile for the build and the runs (else each run would build again).
profile=()
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
  profile=(--dev)
fi
# FUZZ_SANITIZER=none: no AddressSanitizer (several times the executions a second; the
# targets' own assertions and Rust's checks still hold), for long runs on a small machine.
if [ -n "${FUZZ_SANITIZER:-}" ]; then
  profile+=(--sanitizer "$FUZZ_SANITIZER")
fi

cargo +nightly fuzz build "${profile[@]}"
for target in "${TARGETS[@]}"; do
  mkdir -p "work/$target"
  echo "== fuzz target $target: ${flags[*]}"
  cargo +nightly fuzz run "${profile[@]}" "$target" "work/$target" "corpus/$target" -- "${flags[@]}"
done
echo "== every fuzz target ran without a crash: ${TARGETS[*]}"
