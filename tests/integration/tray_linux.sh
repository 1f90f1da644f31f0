#!/usr/bin/env bash
# tray_linux.sh - awq-tray (GTK + AppIndicator) under Xvfb, driven through its test hook: it
# starts the daemon (spawn mode), loads a model, is refused a folder outside the roots, shows the
# daemon's message for a bad setting, unloads, stops the daemon, and quits when stdin closes. The
# printed state transitions are checked; a screenshot with the menu open goes to
# $AWQ_BUILD/tray-linux.png (a CI artifact).
#
# The daemon is the real awqd with a tiny awq-mkmodel checkpoint when awqd, awq-mkmodel and the
# tokenizer are there, else tools/ipc-testserver (accepted with --allow-exe). A tray host
# (trayer) shows the icon when installed; without one the test still runs (no icon in the shot).
# AWQ_TRAY_FAKE=1 forces the test server even when awqd is built.
# Exit 77 (skip) when awq-tray was not built (no GTK/AppIndicator) or Xvfb is missing.
set -u
BIN=${AWQ_BIN:?AWQ_BIN not set}
BUILD=${AWQ_BUILD:-$(dirname "$BIN")}
[ -x "$BIN/awq-tray" ] || { echo "SKIP: awq-tray not built (needs gtk+-3.0 and ayatana-appindicator3-0.1)"; exit 77; }
command -v Xvfb >/dev/null || { echo "SKIP: Xvfb not installed (apt-get install xvfb)"; exit 77; }

T=$(mktemp -d /tmp/awq-tray-it.XXXXXX)
PIDS=()
cleanup() {
  exec 7>&- 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # a daemon the tray spawned is not our child: find it by its binary and its arguments under $T
  local p
  for p in /proc/[0-9]*; do
    case "$(readlink "$p/exe" 2>/dev/null)" in "$BIN/awqd" | "$BIN/ipc-testserver") ;; *) continue ;; esac
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$T/" && kill "${p#/proc/}" 2>/dev/null
  done
  [ -n "${AWQ_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- tray stdout"; cat "$T/out.txt"
  echo "--- tray stderr"; tail -n 30 "$T/err.txt"
  [ -f "$T/state/awqd/awqd.log" ] && { echo "--- daemon log"; tail -n 30 "$T/state/awqd/awqd.log"; }
  exit 1
}

# wait_for PATTERN [SECONDS]: until a line printed since the last send matches (grep -E)
MARK=0
wait_for() {
  local pat=$1 secs=${2:-20} i
  for ((i = 0; i < secs * 10; i++)); do
    tail -n +$((MARK + 1)) "$T/out.txt" | grep -qE -- "$pat" && return 0
    sleep 0.1
  done
  fail "no line matching '$pat' within ${secs}s (after line $MARK)"
}
send() {
  MARK=$(wc -l <"$T/out.txt")
  echo "$*" >&7
}

# ---- X server (a free display picked by Xvfb itself) and a tray host
Xvfb -displayfd 5 -screen 0 1024x768x24 -nolisten tcp 5>"$T/display" >"$T/xvfb.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$T/display" ] && break; sleep 0.1; done
[ -s "$T/display" ] || fail "Xvfb did not start: $(cat "$T/xvfb.log")"
export DISPLAY=":$(cat "$T/display")"
HOST=none
if command -v trayer >/dev/null; then
  trayer --edge top --align right --widthtype pixel --width 240 --heighttype pixel --height 32 \
    --transparent false --tint 0x303030 >"$T/trayer.log" 2>&1 &
  PIDS+=($!)
  HOST=trayer
  sleep 0.5
fi
echo "display $DISPLAY, tray host: $HOST"

# ---- the daemon the tray will start
SOCK="$T/run/awqd.sock"
ARGS=(--test-hook --socket "$SOCK" --start-mode spawn --poll-ms 200)
REAL=0
if [ -z "${AWQ_TRAY_FAKE:-}" ] && [ -x "$BIN/awqd" ] && [ -x "$BIN/awq-mkmodel" ] && [ -n "${AWQ_TOKENIZER:-}" ] && [ -r "${AWQ_TOKENIZER}" ]; then
  mkdir -p "$T/models"
  "$BIN/awq-mkmodel" -o "$T/models/tiny" --preset tiny --tokenizer "$AWQ_TOKENIZER" --seed 7 >/dev/null ||
    fail "awq-mkmodel"
  cat >"$T/awqd.ini" <<EOF
[server]
socket = $SOCK
[model]
roots = $T/models
threads = 1
device = cpu
EOF
  ARGS+=(--awqd "$BIN/awqd" --config "$T/awqd.ini")
  MODEL="$T/models/tiny"
  REAL=1
else
  echo "awqd, awq-mkmodel or the tokenizer missing: using ipc-testserver"
  ARGS+=(--awqd "$BIN/ipc-testserver" --allow-exe ipc-testserver)
  MODEL="$T"
fi
export XDG_STATE_HOME="$T/state" # the spawned daemon's log goes there
mkdir -p "$T/state"

# ---- the tray, stdin from a FIFO held open by fd 7
# Under ASan, LeakSanitizer would report fontconfig's process-lifetime caches (GTK loads them);
# only that library is suppressed, so a leak of the tray's own still fails the test.
printf 'leak:libfontconfig.so\n' >"$T/lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$T/lsan.supp"
mkfifo "$T/in"
RUN=()
command -v dbus-run-session >/dev/null && RUN=(dbus-run-session --)
"${RUN[@]}" "$BIN/awq-tray" "${ARGS[@]}" <"$T/in" >"$T/out.txt" 2>"$T/err.txt" &
TRAY=$!
PIDS+=($TRAY)
exec 7>"$T/in"

wait_for '^awq-tray: test hook on '
wait_for '^state: stopped'
send dump-menu
wait_for '^menu: end'
grep -q '^menu: start "Start service" enabled' "$T/out.txt" || fail "start should be enabled while stopped"
grep -q '^menu: load "Load model…" disabled' "$T/out.txt" || fail "load should be disabled while stopped"
send click unload
wait_for '^hook-error: unload is disabled now'

send click start
wait_for '^done: start ok: awqd started' 30
if [ $REAL = 1 ]; then
  wait_for '^state: idle' 60
  send click load "$MODEL"
  wait_for '^state: loading pct=[0-9]+ stage=' 30
  wait_for '^state: ready model=[^ ]+ device=cpu memory=[1-9]' 60
else
  wait_for '^state: ready model=fake-7b' 30
  send click load "$MODEL" # no roots and model.path on the test server: refused by the tray itself
  wait_for '^refused: .* is not under the model roots'
fi

# outside the roots: the tray refuses before asking the daemon
send click load /etc
wait_for '^refused: /etc is not under the model roots'

# a bad value: the daemon's own message reaches the user
if [ $REAL = 1 ]; then
  send set model.context lots
  wait_for '^error: set failed \(invalid_argument|out_of_range\).*context' 10
  send set model.keep_alive 30m
  wait_for '^done: set ok: saved model.keep_alive = 30m' 10
  grep -q 'keep_alive = 30m' "$T/awqd.ini" || fail "model.keep_alive not saved into awqd.ini"
else
  send set model.bogus 1
  wait_for '^error: set failed \(not_found\): settings_set: unknown key' 10
fi

send dump-menu
wait_for '^menu: end'
since() { tail -n +$((MARK + 1)) "$T/out.txt"; }
since | grep -q '^menu: unload "Unload model" enabled' || fail "unload should be enabled when ready"
since | grep -q '^menu: status "awqd: ready: ' || fail "the status line should say ready"

# the screenshot: open the menu from the icon when a tray host shows it
if [ $HOST = trayer ] && command -v xdotool >/dev/null; then
  xdotool mousemove 1007 16 click 1 2>/dev/null
  sleep 0.8
fi
if command -v import >/dev/null; then
  import -window root "$BUILD/tray-linux.png" 2>/dev/null && echo "screenshot: $BUILD/tray-linux.png"
fi
[ $HOST = trayer ] && command -v xdotool >/dev/null && xdotool mousemove 300 500 click 1 2>/dev/null

send click unload
wait_for '^done: unload ok: model unloaded' 20
[ $REAL = 1 ] && wait_for '^state: idle' 20

send click stop
wait_for '^done: stop ok: awqd is stopping' 20
wait_for '^state: stopped' 60

# closing stdin ends the tray cleanly
exec 7>&-
for _ in $(seq 100); do kill -0 $TRAY 2>/dev/null || break; sleep 0.1; done
kill -0 $TRAY 2>/dev/null && fail "awq-tray did not exit after stdin closed"
wait $TRAY
rc=$?
[ $rc = 0 ] || fail "awq-tray exit status $rc"
grep -q '^bye' "$T/out.txt" || fail "no 'bye' line"
echo "--- transitions"
grep -E '^(state|done|refused|error):' "$T/out.txt"
echo "tray_linux: ok (daemon: $([ $REAL = 1 ] && echo awqd || echo ipc-testserver), host: $HOST)"
