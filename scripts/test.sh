#!/usr/bin/env bash
# Sets up, builds and runs every test: the release build (with the CUDA backend compiled when
# nvcc exists), the whole suite again under ASan+UBSan, and each libFuzzer target for a bounded
# time. Used by .ci/run. Environment: AWQ_FUZZ_SECONDS (default 20 per target), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
JOBS=${JOBS:-$(nproc)}
export CTEST_OUTPUT_ON_FAILURE=1

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest -j "$JOBS" --timeout 900)

echo "== ASan+UBSan build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAWQ_SANITIZE=ON -DAWQ_CUDA=OFF >/dev/null
cmake --build build-asan -j "$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   AWQ_SANITIZED=1 ctest -j "$JOBS" --timeout 1200)

echo "== fuzz targets"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DAWQ_FUZZ=ON -DAWQ_CUDA=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS" --target fuzzers
bash scripts/fuzz.sh build-fuzz "${AWQ_FUZZ_SECONDS:-20}"

if [ -f scripts/windows-test.sh ] && [ "${AWQ_WINDOWS:-1}" = 1 ]; then
  echo "== Windows cross-build under wine"
  bash scripts/windows-test.sh
fi
echo "== all tests passed"
