#!/usr/bin/env bash
# The Windows part of CI (called by scripts/test.sh): cross-builds awqd's libraries, libawq and
# the portable tests with mingw-w64, and runs them under wine through ctest
# (CMAKE_CROSSCOMPILING_EMULATOR). Steps: install mingw/wine/nsis when missing, build the
# dependencies (scripts/win-deps.sh, cached in .cache/win-deps), configure + build build-win, boot
# a throw-away WINEPREFIX in /tmp, keep one idle wine process alive (each wine start costs ~1 s
# cold, ~0.08 s warm), run ctest, stop the idle process. See docs/windows.md.
# Environment: JOBS (default 2), AWQ_WINE_PREFIX (default /tmp/awq-wine-$UID).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-2}
t0=$SECONDS

need=""
for p in gcc-mingw-w64-x86-64 wine wine64 nsis; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
  echo "windows-test: installing$need"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

JOBS=$JOBS bash scripts/win-deps.sh
echo "windows-test: dependencies ready after $((SECONDS - t0)) s"

export PKG_CONFIG_LIBDIR=$ROOT/.cache/win-deps/lib/pkgconfig PKG_CONFIG_PATH="" PKG_CONFIG_SYSROOT_DIR=""
cmake -S . -B build-win -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake -DAWQ_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-win -j "$JOBS"
echo "windows-test: built after $((SECONDS - t0)) s"

export WINEPREFIX=${AWQ_WINE_PREFIX:-/tmp/awq-wine-$(id -u)} WINEARCH=win64 WINEDEBUG=-all \
  WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wineboot -i >/dev/null 2>&1
fi
wine build-win/bin/win-idle.exe >/dev/null 2>&1 &
idle=$!
stop_idle() {
  kill "$idle" 2>/dev/null || true
  wait "$idle" 2>/dev/null || true
  wineserver -k 2>/dev/null || true # this prefix's server only
}
trap stop_idle EXIT

export CTEST_OUTPUT_ON_FAILURE=1
(cd build-win && ctest -j "$JOBS" --timeout 600)
echo "windows-test: passed in $((SECONDS - t0)) s"
