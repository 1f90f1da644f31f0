#!/usr/bin/env bash
# win/daemon - the Windows awqd.exe under wine serving an awq-mkmodel tiny checkpoint over a
# named pipe in console mode, queried by the Windows awq.exe: status, one-shot run and generate
# --json equal to awq-run.exe, a second server on the same pipe refused (the named mutex; wine
# ignores FILE_FLAG_FIRST_PIPE_INSTANCE), --pipe errors, and `awq stop` draining it to exit 0.
# Run by scripts/windows-test.sh (wine prefix, idle process and environment set up there):
# AWQ_WIN_BIN = the Windows build's bin/, AWQ_TOKENIZER.
set -uo pipefail
B=${AWQ_WIN_BIN:?}
TOK=${AWQ_TOKENIZER:-}
[ -n "$TOK" ] && [ -f "$TOK" ] || { echo "SKIP: no tokenizer at AWQ_TOKENIZER"; exit 77; }
T=$(mktemp -d /tmp/awq-win-daemon.XXXXXX)
P=awqtest-$$
trap 'wine "$B/awq.exe" --pipe "$P" stop >/dev/null 2>&1; rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
A() { wine "$B/awq.exe" --pipe "$P" "$@" 2>&1 | tr -d '\r'; return "${PIPESTATUS[0]}"; }

wine "$B/awq-mkmodel.exe" -o "Z:$T/m" --preset tiny --tokenizer "Z:$TOK" --seed 7 >/dev/null 2>&1 ||
  { echo "FAIL awq-mkmodel.exe"; exit 1; }
printf '[server]\npipe = %s\n[model]\nroots = Z:%s\n' "$P" "$T" >"$T/awqd.ini"
wine "$B/awqd.exe" --config "Z:$T/awqd.ini" --model "Z:$T/m" --device cpu --threads 1 --foreground >"$T/awqd.log" 2>&1 &
DPID=$!
# the model loads at start: wait (up to ~60 s on a loaded CI machine under wine) until status
# says it is loaded, not merely until the pipe answers
for _ in $(seq 1 300); do A status 2>/dev/null | grep -q "^loaded: true" && break; sleep 0.2; done
st=$(A status)
check "awqd.exe answers status on \\\\.\\pipe\\$P" 'grep -q "^loaded: true" <<<"$st" && grep -qF "socket: \\\\.\\pipe\\$P" <<<"$st"'
[ "$fails" = 0 ] || { cat "$T/awqd.log"; exit 1; }

out=$(A run -n 8 --temperature 0 "Hello! Who are you?"); rc=$?
ref=$(wine "$B/awq-run.exe" generate -m "Z:$T/m" -n 8 --temperature 0 -- "Hello! Who are you?" 2>/dev/null | tr -d '\r')
check "run over the pipe equals awq-run.exe generate" '[ $rc -eq 0 ] && [ -n "$out" ] && [ "$out" = "$ref" ]'
ids() { sed 's/,"timings".*//' <<<"$1"; }
mine=$(A generate --json -n 12 --temperature 0 -- "Hi")
ref=$(wine "$B/awq-run.exe" generate -m "Z:$T/m" --json -n 12 --temperature 0 -- "Hi" 2>/dev/null | tr -d '\r')
check "generate --json ids equal awq-run.exe --json" '[ -n "$mine" ] && [ "$(ids "$mine")" = "$(ids "$ref")" ]'
check "tokenize over the pipe" '[ "$(A tokenize Hello)" = "{\"ids\":[1,22557]}" ]'

second=$(wine "$B/awqd.exe" --config "Z:$T/awqd.ini" --device cpu 2>&1 | tr -d '\r'); rc=$?
check "a second awqd.exe on the same pipe exits 1: already listening" '[ $rc -eq 1 ] && grep -q "already listening" <<<"$second"'
check "the first one still serves" 'A status | grep -q "^loaded: true"'

e=$(A --pipe 'a\b' status); rc=$?
check "--pipe with a path is a usage error (exit 2)" '[ $rc -eq 2 ] && grep -q "expected a pipe name" <<<"$e"'
e=$(wine "$B/awq.exe" --pipe "nosuch-$$" status 2>&1 | tr -d '\r'); rc=${PIPESTATUS[0]}
check "no daemon on a pipe: exit 3, 'no such pipe'" '[ $rc -eq 3 ] && grep -q "no such pipe" <<<"$e"'

check "awq stop: awqd is shutting down" 'A stop | grep -q "shutting down"'
for _ in $(seq 1 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
wait "$DPID"; rc=$?
check "awqd.exe drained and exited 0" '[ $rc -eq 0 ] && grep -q "INFO stopped" "$T/awqd.log"'
[ "$fails" = 0 ] || { echo "--- awqd.log"; cat "$T/awqd.log"; }
echo "win/daemon: $fails failed"
[ "$fails" = 0 ]
