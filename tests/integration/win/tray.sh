#!/usr/bin/env bash
# win/tray - awq-tray.exe under wine on a virtual X display (Xvfb; with no tray host, wine shows
# the icon in its own "Wine System Tray" window), driven through its test hook against the
# Windows awqd.exe serving a tiny model on a named pipe: the state reaches ready, the menu model,
# unload and load through the menu items, a screenshot (AWQ_TRAY_SHOT, default
# $AWQ_WIN_BIN/../tray-win.png, taken with ImageMagick's import) that must show the green
# "ready" icon, and quit.
# Run by scripts/windows-test.sh (see win/daemon.sh for the environment).
set -uo pipefail
B=${AWQ_WIN_BIN:?}
TOK=${AWQ_TOKENIZER:-}
SHOT=${AWQ_TRAY_SHOT:-$B/../tray-win.png}
[ -n "$TOK" ] && [ -f "$TOK" ] || { echo "SKIP: no tokenizer at AWQ_TOKENIZER"; exit 77; }
for p in Xvfb import; do command -v $p >/dev/null || { echo "SKIP: $p is not installed (xvfb, imagemagick)"; exit 77; }; done
T=$(mktemp -d /tmp/awq-win-tray.XXXXXX)
P=awqtray-$$
XPID= TPID=
cleanup() {
  exec 7>&- 2>/dev/null
  [ -n "$TPID" ] && kill "$TPID" 2>/dev/null
  wine "$B/awq.exe" --pipe "$P" stop >/dev/null 2>&1
  [ -n "$XPID" ] && kill "$XPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
# wait_for PATTERN [tenths]: until the tray printed a line matching PATTERN
wait_for() { for _ in $(seq 1 "${2:-100}"); do grep -q "$1" "$T/tray.out" && return 0; sleep 0.1; done; return 1; }

# The display must exist when the prefix's wine session starts (its desktop process binds to
# it), so scripts/windows-test.sh starts Xvfb before anything else and exports AWQ_XVFB_DISPLAY.
# Run alone (no wine session yet), this script starts its own: a free display number, and wait
# for its socket, since wine started before the server is up has no display.
if [ -n "${AWQ_XVFB_DISPLAY:-}" ]; then
  D=$AWQ_XVFB_DISPLAY
else
  n=90
  while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do n=$((n + 1)); done
  D=:$n
  Xvfb "$D" -screen 0 800x600x24 -nolisten tcp >"$T/xvfb.log" 2>&1 &
  XPID=$!
  for _ in $(seq 1 50); do [ -S "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
  [ -S "/tmp/.X11-unix/X$n" ] || { echo "FAIL Xvfb $D did not start"; cat "$T/xvfb.log"; exit 1; }
fi
export DISPLAY=$D
wine "$B/awq-mkmodel.exe" -o "Z:$T/m" --preset tiny --tokenizer "Z:$TOK" --seed 7 >/dev/null 2>&1 ||
  { echo "FAIL awq-mkmodel.exe"; exit 1; }
printf '[server]\npipe = %s\n[model]\nroots = Z:%s\n' "$P" "$T" >"$T/awqd.ini"
wine "$B/awqd.exe" --config "Z:$T/awqd.ini" --model "Z:$T/m" --device cpu --threads 1 >"$T/awqd.log" 2>&1 &
for _ in $(seq 1 300); do wine "$B/awq.exe" --pipe "$P" status 2>/dev/null | grep -q "^loaded: true" && break; sleep 0.2; done

mkfifo "$T/in"
wine "$B/awq-tray.exe" --test-hook --socket "$P" --config "Z:$T/awqd.ini" --poll-ms 200 <"$T/in" >"$T/tray.out" 2>&1 &
TPID=$!
exec 7>"$T/in"
trap '' PIPE # a tray that died must fail the checks, not kill this script
hook() { echo "$*" >&7 2>/dev/null; }
check "the tray starts with its test hook on the pipe" 'wait_for "test hook on $P"'
check "state: ready with the model" 'wait_for "^state: ready model=m "'
hook dump-menu
check "menu: unload enabled, start disabled while serving" \
  'wait_for "^menu: end" && grep -q "^menu: unload .* enabled" "$T/tray.out" && grep -q "^menu: start .* disabled" "$T/tray.out"'
sleep 1 # the icon window settles before the picture
import -display "$D" -window root "$SHOT" 2>/dev/null
# the "ready" icon is a disc of RGB(31,157,85) (tray/ui_win.c): it must be on the screen
check "screenshot $(basename "$SHOT") shows the green ready icon" \
  '[ -s "$SHOT" ] && convert "$SHOT" -format %c histogram:info:- 2>/dev/null | grep -qi "#1F9D55"'
hook click unload
check "click unload: done ok, state idle" 'wait_for "^done: unload ok" && wait_for "^state: idle"'
hook click load "Z:$T/m"
check "click load: done ok, ready again" 'wait_for "^done: load ok" && wait_for "^state: ready model=m " 50'
hook click load "Z:/etc"
check "a folder outside the roots is refused" 'wait_for "^refused: "'
hook set model.keep_alive 30m
check "set model.keep_alive from the tray: the daemon saves it" \
  'wait_for "^done: set ok: saved model.keep_alive = 30m" && grep -q "keep_alive *= *30m" "$T/awqd.ini"'
hook set model.context lots
check "a value the daemon rejects is shown with the daemon's message" 'wait_for "^error: set failed .*context"'
hook click quit
for _ in $(seq 1 50); do kill -0 "$TPID" 2>/dev/null || break; sleep 0.1; done
wait "$TPID"; rc=$?
TPID=
check "click quit: the tray exits 0" '[ $rc -eq 0 ]'
[ "$fails" = 0 ] || { echo "--- tray output"; cat "$T/tray.out"; }
echo "win/tray: $fails failed"
[ "$fails" = 0 ]
