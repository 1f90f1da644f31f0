#!/usr/bin/env bash
# win/service - awqd.exe as a Windows service under wine's service manager: --install-service
# with --config, `net start` (START_PENDING with a checkpoint and wait hint while the model
# loads, then RUNNING), the pipe answering, `net stop` (SERVICE_CONTROL_STOP
# drains like SIGTERM), the service log in %PROGRAMDATA%\awqd\logs\awqd.log, and
# --uninstall-service. Run by scripts/windows-test.sh (see win/daemon.sh for the environment).
set -uo pipefail
B=${AWQ_WIN_BIN:?}
TOK=${AWQ_TOKENIZER:-}
[ -n "$TOK" ] && [ -f "$TOK" ] || { echo "SKIP: no tokenizer at AWQ_TOKENIZER"; exit 77; }
# sc.exe and net.exe are wine builtins: ask the 64-bit loader (plain `wine` may look for wine32)
W=wine
[ -x /usr/lib/wine/wine64 ] && W=/usr/lib/wine/wine64
T=$(mktemp -d /tmp/awq-win-svc.XXXXXX)
P=awqsvc-$$
cleanup() {
  wine "$B/awqd.exe" --uninstall-service >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
state() { $W sc query awqd 2>/dev/null | tr -d '\r' | sed -n 's/.*STATE *: *[0-9] *//p'; }

wine "$B/awqd.exe" --uninstall-service >/dev/null 2>&1 # a leftover of an interrupted run
wine "$B/awq-mkmodel.exe" -o "Z:$T/m" --preset tiny --tokenizer "Z:$TOK" --seed 7 >/dev/null 2>&1 ||
  { echo "FAIL awq-mkmodel.exe"; exit 1; }
printf '[server]\npipe = %s\n[model]\npath = Z:%s/m\ndevice = cpu\nthreads = 1\n' "$P" "$T" >"$T/svc.ini"
out=$(wine "$B/awqd.exe" --config "Z:$T/svc.ini" --install-service 2>&1 | tr -d '\r'); rc=$?
check "--install-service exits 0" '[ $rc -eq 0 ] && grep -q "installed" <<<"$out"'
# wine's sc.exe has no qc or interrogate: test_winsvc reads the configuration through
# QueryServiceConfigW and sends SERVICE_CONTROL_INTERROGATE itself
out=$(wine "$B/awqd.exe" --install-service 2>&1 | tr -d '\r'); rc=$?
check "a second --install-service: exit 1, already installed" '[ $rc -eq 1 ] && grep -q "already installed" <<<"$out"'
check "installed and STOPPED" '[ "$(state)" = STOPPED ]'

$W net start awqd >/dev/null 2>&1
q=$($W sc query awqd 2>/dev/null | tr -d '\r') # one snapshot: the load takes a fraction of a second
seen=$(sed -n 's/.*STATE *: *[0-9] *//p' <<<"$q")
check "net start: START_PENDING or RUNNING (got $seen)" '[ "$seen" = START_PENDING ] || [ "$seen" = RUNNING ]'
if [ "$seen" = START_PENDING ]; then
  check "while loading: a checkpoint and a 30 s wait hint" 'grep -q "CHECKPOINT *: 0x[1-9]" <<<"$q" && grep -q "WAIT_HINT *: 0x7530" <<<"$q"'
else
  echo "note the model loaded before sc query looked: the start-pending snapshot was not seen this time"
fi
for _ in $(seq 1 300); do [ "$(state)" = RUNNING ] && break; sleep 0.1; done
check "RUNNING once the model is loaded" '[ "$(state)" = RUNNING ]'
st=$(wine "$B/awq.exe" --pipe "$P" status 2>&1 | tr -d '\r')
check "the service answers on its pipe with the model loaded" 'grep -q "^loaded: true" <<<"$st"'
out=$(wine "$B/awq.exe" --pipe "$P" run -n 4 --temperature 0 Hi 2>&1); rc=$?
check "run through the service" '[ $rc -eq 0 ] && [ -n "$out" ]'

$W net stop awqd >/dev/null 2>&1
for _ in $(seq 1 300); do [ "$(state)" = STOPPED ] && break; sleep 0.1; done
check "net stop: STOPPED" '[ "$(state)" = STOPPED ]'
check "exit code 0 after the drain" '$W sc query awqd | tr -d "\r" | grep -q "WIN32_EXIT_CODE *: 0 "'
# %PROGRAMDATA% as the service sees it (wine gives services C:\users\Public)
log=$(find "$WINEPREFIX/drive_c" -path '*awqd/logs/awqd.log' -newer "$T/svc.ini" 2>/dev/null | head -n1)
check "the service log has start, ready, drain and stop" \
  '[ -n "$log" ] && grep -q "starting (settings: Z:" "$log" && grep -q "INFO ready" "$log" && grep -q "draining" "$log" && grep -q "INFO stopped" "$log"'

out=$(wine "$B/awqd.exe" --uninstall-service 2>&1 | tr -d '\r'); rc=$?
check "--uninstall-service removes it" '[ $rc -eq 0 ] && grep -q removed <<<"$out" && [ -z "$(state)" ]'
out=$(wine "$B/awqd.exe" --uninstall-service 2>&1 | tr -d '\r'); rc=$?
check "again: exit 1, not installed" '[ $rc -eq 1 ] && grep -q "is not installed" <<<"$out"'
[ "$fails" = 0 ] || { [ -n "${log:-}" ] && cat "$log"; }
echo "win/service: $fails failed"
[ "$fails" = 0 ]
