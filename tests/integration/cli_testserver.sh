#!/usr/bin/env bash
# integration.cli_testserver - the `awq` CLI's own behaviour, against tools/ipc-testserver (a
# protocol server with fake generation: it streams the words of the last message, "FAIL"
# fails, "SLOW" is 20 ms a token), so it needs no model or tokenizer: usage errors and exit
# code 2 with their messages, --help of every command, --version, the cannot-connect message
# (exit 3), the server's errors (exit 1), Ctrl-C cancelling a one-shot answer (exit 4) and a
# chat answer (the chat goes on), multiline chat input (\ and """), the chat's commands,
# --timeout, $AWQ_SOCKET, keygen and an encrypted connection with key pinning.
set -uo pipefail
BIN=$(cd "${AWQ_BIN:?}" && pwd)
for p in awq ipc-testserver; do
  [ -x "$BIN/$p" ] || { echo "SKIP: $p not built"; exit 77; }
done
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the pseudo-terminal"; exit 77; }

T=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
export HOME="$T" XDG_CONFIG_HOME="$T/cfg" AWQD_CONFIG=
unset AWQ_SOCKET
mkdir -m 700 "$T/run"
S="$T/run/ts.sock"
A() { "$BIN/awq" --socket "$S" "$@"; }

# expect NAME CODE STDERR-TEXT ARGS...: exit code and message (stdin from /dev/null)
expect() {
  local name=$1 code=$2 msg=$3; shift 3
  local err rc
  err=$("$BIN/awq" "$@" 2>&1 >/dev/null </dev/null); rc=$?
  if [ "$rc" -eq "$code" ] && grep -qF -- "$msg" <<<"$err"; then ok "$name"; else bad "$name (rc $rc: $err)"; fi
}

# ---- usage (no server needed)
expect "no command" 2 "usage: awq [GLOBAL OPTIONS] COMMAND"
expect "unknown command" 2 "awq: unknown command 'frob'" frob
expect "unknown global option" 2 "awq: unknown option '--frob'" --frob status
expect "unknown command option" 2 "awq status: unknown option '--frob'" status --frob
expect "bad number" 2 "awq run: --temperature 'hot': expected a number in [0, 100]" run --temperature hot x
expect "number out of range" 2 "awq generate: --top-p '1.5': expected a number in [0, 1]" generate --top-p 1.5 x
expect "bad integer" 2 "awq run: -n '-3': expected an integer in [0, 1048576]" run -n -3 x
expect "bad seed" 2 "awq run: --seed 'x': expected an unsigned integer" run --seed x hi
expect "missing value" 2 "awq run: --stop needs a value" run hi --stop
expect "bad --timeout" 2 "awq: --timeout '0': expected milliseconds" --timeout 0 status
expect "generate takes one TEXT" 2 "awq generate: expected one TEXT, got 2 arguments" generate a b
expect "--raw with --system" 2 "--system needs the chat template" generate --raw --system s x
expect "empty prompt" 2 "awq run: the prompt is empty" run
expect "detokenize: not an id" 2 "awq detokenize: argument 2 'abc' is not a token id" detokenize 1 abc
expect "detokenize: no ids" 2 "awq detokenize: no token ids given" detokenize
expect "settings without action" 2 "awq settings: missing action: use get or set" settings
expect "settings unknown action" 2 "awq settings: unknown action 'frob'" settings frob
expect "settings set without value" 2 "awq settings: settings set needs KEY and VALUE" settings set k
expect "load without DIR" 2 "awq load: missing argument" load
expect "status with an argument" 2 "awq status: unexpected argument 'x'" status x
tmpl() { local err rc; err=$("$BIN/awq" --socket "$S" template 2>&1 >/dev/null <<<"$2"); rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$3" <<<"$err"; then ok "$1"; else bad "$1 (rc $rc: $err)"; fi; }
tmpl "template: bad JSON (line and column)" '[{"role":"user",
 "content": nope}]' "awq template: stdin: invalid JSON at line 2, column 13"
tmpl "template: not an array" '{"x":1}' 'expected an array of messages'
tmpl "template: missing content" '[{"role":"user","content":"a"},{"role":"user"}]' 'stdin: message 2 needs a string "content"'
tmpl "template: trailing text" '[] x' 'unexpected text after the JSON at line 1, column 4'
tmpl "template: no messages" '[]' 'stdin: no messages'
expect "template: missing file" 2 "awq template: $T/none.json: No such file" template "$T/none.json"

for c in run generate tokenize detokenize template load unload list status settings metrics keygen ping stop; do
  out=$("$BIN/awq" "$c" --help); rc=$?
  check "$c --help" '[ $rc -eq 0 ] && grep -q "^usage: awq \[GLOBAL OPTIONS\] $c" <<<"$out"'
done
check "help run" '"$BIN/awq" help run | grep -q "^usage: awq \[GLOBAL OPTIONS\] run"'
check "--help lists the exit codes" '"$BIN/awq" --help | grep -q "3 cannot connect to awqd"'
check "--version" '"$BIN/awq" --version | grep -q "^awq [0-9]"'
check "--json --version" '"$BIN/awq" --json --version | python3 -c "import json,sys; json.load(sys.stdin)[\"version\"]"'

# ---- cannot connect
expect "cannot connect: exit 3 and the hint" 3 \
  "awq: cannot connect to awqd at $T/run/none.sock: connect $T/run/none.sock: No such file or directory — is the daemon running? start it with \`awqd\`" \
  --socket "$T/run/none.sock" status
err=$(AWQ_SOCKET="$T/run/env.sock" "$BIN/awq" status 2>&1); rc=$?
check "\$AWQ_SOCKET is used" '[ $rc -eq 3 ] && grep -qF "at $T/run/env.sock:" <<<"$err"'

# ---- against the test server
"$BIN/ipc-testserver" --socket "$S" >"$T/ts.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do A ping >/dev/null 2>&1 && break; sleep 0.1; done
check "ping" 'A ping | grep -q "^pong from ipc-testserver"'
check "run streams the answer" '[ "$(A run -n 4 one two)" = "one twoone two" ]'
check "run with stdin" '[ "$(echo "one two" | A run -n 2)" = "one two" ]'
err=$(A run FAIL 2>&1 >/dev/null); rc=$?
check "the server's error: exit 1, awq: <name>: <message>" \
  '[ $rc -eq 1 ] && [ "$err" = "awq: invalid_argument: generate: the test server was asked to fail" ]'
err=$(A settings get nope 2>&1); rc=$?
check "settings get unknown key: exit 1" '[ $rc -eq 1 ] && [ "$err" = "awq: not_found: settings_get: unknown key" ]'
check "status --json" 'A --json status | python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"test_server\"] is True"'
check "status --json after the command" 'A status --json | grep -q "\"model\":\"fake-7b\""'
out=$(A load "$T/none/../x" 2>&1); rc=$?
check "load: the server's refusal" '[ $rc -eq 1 ] && grep -q "^awq: permission_denied: load: path outside the model roots" <<<"$out"'

# Ctrl-C in a one-shot run: the answer is cancelled, exit 4.
"$BIN/awq" --socket "$S" run -n 10000 SLOW >"$T/out" 2>"$T/err" &
p=$!
for _ in $(seq 1 50); do [ -s "$T/out" ] && break; sleep 0.05; done
kill -INT $p; wait $p; rc=$?
check "Ctrl-C cancels a one-shot answer: exit 4" '[ $rc -eq 4 ] && grep -q "^awq: cancelled" "$T/err" && grep -q SLOW "$T/out"'
[ $rc -eq 4 ] || { echo "rc $rc"; cat "$T/err"; }
check "the server saw the cancel" '[ "$(grep -o SLOW "$T/out" | wc -l)" -lt 10000 ]'

# --timeout: a server that says nothing for longer than MS
S2="$T/run/slow.sock"
"$BIN/ipc-testserver" --socket "$S2" --token-delay-us 3000000 >"$T/ts2.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do "$BIN/awq" --socket "$S2" ping >/dev/null 2>&1 && break; sleep 0.1; done
err=$("$BIN/awq" --socket "$S2" --timeout 1000 run -n 3 a 2>&1 >/dev/null); rc=$?
check "--timeout: no event within MS fails (exit 1, timed_out)" '[ $rc -eq 1 ] && grep -q "^awq: timed_out: " <<<"$err"'

# ---- the chat on a pseudo-terminal
cat >"$T/chat.py" <<'EOF'
import os, pty, sys, time, select
script = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
out = b""
seen = 0  # each wait looks only at what came after the previous match
def read_until(pat, timeout=20):
    global out, seen
    end = time.time() + timeout
    while time.time() < end and pat not in out[seen:]:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try: d = os.read(fd, 4096)
            except OSError: break
            if not d: break
            out += d
    if pat not in out[seen:]:
        sys.stdout.write(out.decode("utf-8", "replace")); print("\nMISSING %r" % pat); os._exit(3)
    seen = out.index(pat, seen) + len(pat)
# script lines: "> TEXT" sends TEXT and a newline, "^C" sends Ctrl-C, "^D" sends Ctrl-D,
# "? TEXT" waits until TEXT has appeared (\n and \r escapes allowed)
for line in script.split("\n"):
    if line.startswith("> "): os.write(fd, line[2:].encode() + b"\n")
    elif line == "^C": os.write(fd, b"\x03")
    elif line == "^D": os.write(fd, b"\x04")
    elif line.startswith("? "): read_until(line[2:].encode().decode("unicode_escape").encode("latin-1"))
_, st = os.waitpid(pid, 0)
try:
    while True:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r: break
        d = os.read(fd, 4096)
        if not d: break
        out += d
except OSError: pass
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
chat() { python3 "$T/chat.py" "$1" "$BIN/awq" --socket "$S" run -n "${2:-3}" 2>&1; }
out=$(chat '? >>> 
> hi
? hihihi
? >>> 
> /set temperature 0
? Set temperature to 0.
> /bye'); rc=$?
check "chat: hi, /set temperature 0, /bye" '[ $rc -eq 0 ] && grep -q "awq chat with ipc-testserver" <<<"$out"'
out=$(chat '? >>> 
> first \
? ... 
> second
? first \r\nsecond
? >>> 
> """
? ... 
> alpha
> beta"""
? alpha\r\nbetaalpha
? >>> 
^D' 2); rc=$?
check "chat: \\ continues a line, \"\"\" blocks, Ctrl-D leaves" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || echo "$out"
out=$(chat '? >>> 
> SLOW
? SLOWSLOW
^C
? (answer stopped)
? >>> 
^C
? /bye or Ctrl-D leaves
> /bye' 100000); rc=$?
check "chat: Ctrl-C stops the answer, not the chat" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || echo "$out"
out=$(chat '? >>> 
> /help
? /system TEXT
> /set top_p 7
? expected a number in [0, 1]
> /set seed 42
? Set seed to 42.
> /set
? seed 42
> /set frob 1
? unknown key
> /system Be brief.
? Set the system message.
> /clear
? Cleared the conversation.
> /frob
? unknown command
> FAIL
? awq: invalid_argument: generate: the test server was asked to fail
? >>> 
> after
? afterafter
> /bye'); rc=$?
check "chat: commands, errors keep the chat going" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || echo "$out"

# ---- keys and an encrypted connection
out=$("$BIN/awq" keygen --out "$T/keys"); rc=$?
check "keygen writes the pair and prints the fingerprint" \
  '[ $rc -eq 0 ] && [ -f "$T/keys/client.key" ] && [ -f "$T/keys/client.pub" ] && grep -Eq "^fingerprint: [a-z2-7]{8}(-[a-z2-7]{8}){3}$" <<<"$out"'
check "the secret key is owner-only" '[ "$(stat -c %a "$T/keys/client.key")" = 600 ]'
expect "keygen never overwrites" 1 "awq: exists: " keygen --out "$T/keys"
check "keygen --json" '"$BIN/awq" --json keygen --out "$T/skeys" | python3 -c "import json,sys; d=json.load(sys.stdin); assert len(d[\"fingerprint\"]) == 35"'
check "keygen default dir: \$XDG_CONFIG_HOME/awqd" '"$BIN/awq" keygen >/dev/null && [ -f "$T/cfg/awqd/client.key" ]'
S3="$T/run/enc.sock"
cat "$T/keys/client.pub" "$T/cfg/awqd/client.pub" >"$T/authorized"
"$BIN/ipc-testserver" --socket "$S3" --enc required --key "$T/skeys/client.key" --authorized "$T/authorized" >"$T/ts3.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -S "$S3" ] && break; sleep 0.1; done
out=$("$BIN/awq" --socket "$S3" --key "$T/keys/client.key" --known-servers "$T/known" ping 2>&1); rc=$?
check "encrypted: the first connection pins the server key" '[ $rc -eq 0 ] && grep -q "pinned the key of the new server" <<<"$out" && grep -q "(encrypted)" <<<"$out"'
out=$("$BIN/awq" --socket "$S3" --key "$T/keys/client.key" --known-servers "$T/known" run -n 2 "x y" 2>&1); rc=$?
check "encrypted: then it is known, and generation works" '[ $rc -eq 0 ] && [ "$out" = "x y" ]'
out=$("$BIN/awq" --socket "$S3" --encrypt run -n 2 "x y" 2>&1); rc=$?
check "--encrypt takes the keys from the user config directory" '[ $rc -eq 0 ] && [ -f "$T/cfg/awqd/known_servers" ]'
err=$("$BIN/awq" --socket "$S3" status 2>&1); rc=$?
check "plain connection to an encryption-only server: exit 3" '[ $rc -eq 3 ] && grep -q "cannot connect to awqd at $S3" <<<"$err"'

check "stop" '[ "$(A stop)" = "awqd is shutting down" ] && [ "$(A --json stop 2>/dev/null; echo $?)" = 3 ]'

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
