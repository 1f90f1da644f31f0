#!/usr/bin/env bash
# The Windows part of CI (called by scripts/test.sh): cross-builds awqd, awq, awq-tray, the tools,
# libawq and the portable tests with mingw-w64, runs the unit tests under wine through ctest
# (CMAKE_CROSSCOMPILING_EMULATOR), then the Windows integration tests in tests/integration/win
# (the daemon on a named pipe, the Windows service, the NSIS installer, the tray under Xvfb with
# a screenshot in build-win/tray-win.png). Steps: install mingw/wine/nsis/xvfb/imagemagick when
# missing, build the dependencies (scripts/win-deps.sh, cached in .cache/win-deps), configure +
# build build-win, boot a throw-away WINEPREFIX in /tmp, keep one idle wine process alive (each
# wine start costs ~1 s cold, ~0.08 s warm), run the tests, stop the idle process. See
# docs/windows.md.
# Environment: JOBS (default 2), AWQ_WINE_PREFIX (default /tmp/awq-wine-$UID), AWQ_WIN_BUILD
# (default build-win).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-2}
BUILD=${AWQ_WIN_BUILD:-build-win}
t0=$SECONDS

need=""
for p in gcc-mingw-w64-x86-64 wine wine64 nsis xvfb imagemagick; do
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
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake -DAWQ_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS"
echo "windows-test: built after $((SECONDS - t0)) s"

export WINEPREFIX=${AWQ_WINE_PREFIX:-/tmp/awq-wine-$(id -u)} WINEARCH=win64 WINEDEBUG=-all \
  WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wineboot -i >/dev/null 2>&1
  # the first boot leaves two services.exe behind (one from before the prefix's registry was
  # set up); service calls would then go to either at random. A clean restart leaves one.
  wineserver -k 2>/dev/null || true
  wineserver -w 2>/dev/null || true
fi
# A virtual display for the whole wine session: the tray test needs it, and wine's desktop
# process binds to the display it finds when the session starts.
xvfb=""
if command -v Xvfb >/dev/null; then
  n=90
  while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
  Xvfb ":$n" -screen 0 800x600x24 -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  for _ in $(seq 1 50); do [ -S "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
  export DISPLAY=:$n AWQ_XVFB_DISPLAY=:$n
fi
wine "$BUILD/bin/win-idle.exe" >/dev/null 2>&1 &
idle=$!
# let the prefix finish starting (services, the desktop process) before the tests start in
# parallel: tests started into a half-started session hung at exit now and then
wine cmd /c ver >/dev/null 2>&1 || true
stop_idle() {
  kill "$idle" 2>/dev/null || true
  wait "$idle" 2>/dev/null || true
  wineserver -k 2>/dev/null || true # this prefix's server only
  [ -n "$xvfb" ] && kill "$xvfb" 2>/dev/null
  true
}
trap stop_idle EXIT

export CTEST_OUTPUT_ON_FAILURE=1
(cd "$BUILD" && ctest -j "$JOBS" --timeout 600)
echo "windows-test: unit tests passed after $((SECONDS - t0)) s"

# The Windows programs together, one script at a time (they share the prefix's service manager).
export AWQ_WIN_BIN=$ROOT/$BUILD/bin AWQ_SRC=$ROOT AWQ_TRAY_SHOT=$ROOT/$BUILD/tray-win.png
export AWQ_TOKENIZER=${AWQ_TOKENIZER:-$ROOT/.cache/tokenizer/tokenizer.json}
failed=""
for t in tests/integration/win/*.sh; do
  n=win.$(basename "$t" .sh)
  ts=$SECONDS
  rc=0
  timeout 300 bash "$t" >"$BUILD/$n.log" 2>&1 || rc=$?
  case $rc in
  0) echo "windows-test: $n passed ($((SECONDS - ts)) s)" ;;
  77) echo "windows-test: $n skipped: $(grep -m1 '^SKIP' "$BUILD/$n.log")" ;;
  *)
    echo "windows-test: $n FAILED (exit $rc):"
    cat "$BUILD/$n.log"
    failed="$failed $n"
    ;;
  esac
done
[ -z "$failed" ] || { echo "windows-test: failed:$failed"; exit 1; }
echo "windows-test: passed in $((SECONDS - t0)) s"
