#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build for SECONDS each, starting from the committed seed
# corpus in tests/fuzz/corpus/<target>/ (copied, so the tree stays clean). Any finding fails.
# Usage: scripts/fuzz.sh BUILD_DIR SECONDS [RUNS]   (RUNS: stop after that many executions)
set -euo pipefail
B=${1:-build-fuzz}
S=${2:-20}
R=${3:-}
cd "$(dirname "$0")/.."
found=0
for f in "$B"/bin/fuzz_*; do
  [ -x "$f" ] || continue
  n=$(basename "$f")
  work=$(mktemp -d)
  [ -d "tests/fuzz/corpus/$n" ] && cp -r "tests/fuzz/corpus/$n/." "$work/" 2>/dev/null || true
  args=(-max_total_time="$S" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  [ -n "$R" ] && args+=(-runs="$R")
  [ -f "tests/fuzz/$n.dict" ] && args+=(-dict="tests/fuzz/$n.dict")
  if ASAN_OPTIONS=detect_leaks=1 "$f" "${args[@]}" -artifact_prefix="$work/" "$work" >"$work.log" 2>&1; then
    echo "fuzz: $n ok, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$') execs"
  else
    echo "fuzz: $n FOUND A PROBLEM" >&2
    tail -40 "$work.log" >&2
    found=1
  fi
  rm -rf "$work" "$work.log"
done
exit $found
