#!/usr/bin/env bash
# integration.cli_daemon - the `awq` CLI against the real awqd serving an awq-mkmodel tiny
# checkpoint with the real tokenizer, on a temporary socket: one-shot run (arguments and
# stdin), generate --json ids equal to awq-run generate --json at temperature 0 (chat and
# --raw), tokenize / detokenize / template equal to awq-run's, status / list / unload / load
# (progress lines and --json), settings get / set, metrics, the daemon's errors (exit 1,
# "awq: <name>: <message>"), the interactive chat on a pseudo-terminal ("hi",
# "/set temperature 0", "/bye"), and stop.
set -uo pipefail
BIN=$(cd "${AWQ_BIN:?}" && pwd)
TOK=${AWQ_TOKENIZER:-}
[ -n "$TOK" ] && [ -f "$TOK" ] || { echo "SKIP: no tokenizer at AWQ_TOKENIZER"; exit 77; }
for p in awq awqd awq-run awq-mkmodel; do
  [ -x "$BIN/$p" ] || { echo "SKIP: $p not built"; exit 77; }
done
"$BIN/awqd" --help | grep -q -- '--model' || { echo "SKIP: this awqd has no serving mode yet"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is needed for the pseudo-terminal"; exit 77; }

T=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

"$BIN/awq-mkmodel" -o "$T/m" --preset tiny --tokenizer "$TOK" --seed 7 >/dev/null 2>&1 || { echo "FAIL awq-mkmodel"; exit 1; }
# A settings file of our own (settings set needs one) and no user or system file in the way.
mkdir -m 700 "$T/run" "$T/cfg"
printf '[model]\nroots = %s\n' "$T" > "$T/cfg/awqd.ini"
export HOME="$T" XDG_CONFIG_HOME="$T/cfg" AWQD_CONFIG="$T/cfg/awqd.ini"
unset AWQ_SOCKET
S="$T/run/awqd.sock"
"$BIN/awqd" --config "$T/cfg/awqd.ini" --socket "$S" --model "$T/m" --device cpu --threads 1 2>"$T/awqd.log" &
PID=$!
A() { "$BIN/awq" --socket "$S" "$@"; }
for _ in $(seq 1 100); do A status >/dev/null 2>&1 && break; sleep 0.1; done
A status >/dev/null 2>&1 || { echo "FAIL awqd did not come up"; cat "$T/awqd.log"; exit 1; }
ok "awqd answers status"

# ---- generation
out=$(A run -n 8 --temperature 0 "Hello! Who are you?"); rc=$?
check "run PROMPT exits 0 with text" '[ $rc -eq 0 ] && [ -n "$out" ]'
out2=$(echo "Hello! Who are you?" | A run -n 8 --temperature 0); rc=$?
check "run reads the prompt from stdin (same answer)" '[ $rc -eq 0 ] && [ "$out" = "$out2" ]'
ids() { sed 's/,"timings".*//' <<<"$1"; }  # prompt_ids, ids, text and finish_reason
mine=$(A generate --json -n 12 --temperature 0 -- "Hello! Who are you?")
ref=$("$BIN/awq-run" generate -m "$T/m" --json -n 12 --temperature 0 -- "Hello! Who are you?")
check "generate --json ids equal awq-run generate --json" '[ -n "$mine" ] && [ "$(ids "$mine")" = "$(ids "$ref")" ]'
check "generate --json has timings and usage" 'grep -q "\"decode_tok_s\"" <<<"$mine" && grep -q "\"usage\":{\"prompt_tokens\":" <<<"$mine"'
mine=$(A generate --json -n 6 --temperature 0 --system "Be brief." -- "Hi")
ref=$("$BIN/awq-run" generate -m "$T/m" --json -n 6 --temperature 0 --system "Be brief." -- "Hi")
check "generate --system equals awq-run" '[ -n "$mine" ] && [ "$(ids "$mine")" = "$(ids "$ref")" ]'
mine=$(A generate --json --raw -n 6 --temperature 0 -- "Hello")
ref=$("$BIN/awq-run" generate -m "$T/m" --json --raw -n 6 --temperature 0 -- "Hello")
check "generate --raw equals awq-run (prompt_ids [1,22557])" '[ "$(ids "$mine")" = "$(ids "$ref")" ] && grep -q "\"prompt_ids\":\[1,22557\]" <<<"$mine"'
lp=$(A generate --json -n 3 --temperature 0 --logprobs 2 -- "Hi")
check "generate --logprobs 2 reports 3 tokens with 2 alternatives" \
  'python3 -c "import json,sys; d=json.loads(sys.argv[1]); l=d[\"logprobs\"]; assert len(l)==3 and all(len(x[\"top\"])==2 for x in l)" "$lp"'
same1=$(A generate --json -n 8 --seed 11 -- "Hi"); same2=$(A generate --json -n 8 --seed 11 -- "Hi")
check "same --seed, same ids" '[ "$(ids "$same1")" = "$(ids "$same2")" ]'

# ---- tokenizer and template
check "tokenize equals awq-run tokenize" '[ "$(A tokenize "Hello world, 日本")" = "$("$BIN/awq-run" tokenize -m "$T/m" -- "Hello world, 日本")" ]'
check "tokenize --no-bos equals awq-run" '[ "$(A tokenize --no-bos "a b")" = "$("$BIN/awq-run" tokenize -m "$T/m" --no-bos -- "a b")" ]'
check "tokenize reads stdin" '[ "$(printf "Hello" | A tokenize)" = "{\"ids\":[1,22557]}" ]'
check "detokenize equals awq-run detokenize" '[ "$(A detokenize 1 22557 1526)" = "$("$BIN/awq-run" detokenize -m "$T/m" -- 1 22557 1526)" ]'
check "detokenize --json" '[ "$(A --json detokenize --skip-special 1 22557)" = "{\"text\":\"Hello\"}" ]'
msgs='[{"role":"system","content":"S"},{"role":"user","content":"Hi"}]'
check "template equals awq-run template" '[ "$(A template <<<"$msgs")" = "$("$BIN/awq-run" template -m "$T/m" <<<"$msgs")" ]'
check "template --no-generation-prompt equals awq-run" \
  '[ "$(A template --no-generation-prompt <<<"$msgs")" = "$("$BIN/awq-run" template -m "$T/m" --no-generation-prompt <<<"$msgs")" ]'

# ---- status, list, unload, load
st=$(A status)
check "status names the model" 'grep -q "^loaded: true" <<<"$st" && grep -q "^model_path: $T/m" <<<"$st"'
check "status --json is a JSON object" 'A --json status | python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"loaded\"] is True"'
check "list shows the model as loaded" 'A list | grep -q "yes .*$T/m"'
check "list --json" 'A --json list | python3 -c "import json,sys; d=json.load(sys.stdin); assert any(m[\"loaded\"] for m in d[\"models\"])"'
check "unload" '[ "$(A unload)" = "unloaded" ] && A status | grep -q "^loaded: false"'
err=$(A run hi 2>&1 >/dev/null); rc=$?
check "run without a model: exit 1, awq: no_model: ..." '[ $rc -eq 1 ] && grep -q "^awq: no_model: " <<<"$err"'
out=$(cd "$T" && A load m); rc=$?
check "load DIR (relative) prints progress lines and loaded" '[ $rc -eq 0 ] && grep -q "^ready 100%$" <<<"$out" && grep -q "^loaded $T/m$" <<<"$out"'
out=$(A --json load "$T/m")
check "load --json prints progress objects" 'grep -q "{\"stage\":\"ready\",\"pct\":100.0}" <<<"$out" && grep -q "\"loaded\":\"$T/m\"" <<<"$out"'
err=$(A load /etc 2>&1); rc=$?
check "load outside the roots: exit 1 with the reason" '[ $rc -eq 1 ] && grep -q "^awq: permission_denied: " <<<"$err"'

# ---- settings and metrics
check "settings get lists keys" 'A settings get | grep -q "^generation.temperature = "'
check "settings set then get" 'A settings set generation.temperature 0.25 >/dev/null && [ "$(A settings get generation.temperature)" = "0.25" ]'
check "settings get --json" 'A --json settings get generation.temperature | python3 -c "import json,sys; d=json.load(sys.stdin); assert d[\"generation.temperature\"] in (\"0.25\", 0.25)"'
err=$(A settings set generation.nope 1 2>&1); rc=$?
check "settings set unknown key: exit 1" '[ $rc -eq 1 ] && grep -q "^awq: [a-z_]*: .*generation.nope" <<<"$err"'
err=$(A settings set generation.temperature 99 2>&1); rc=$?
check "settings set bad value: exit 1" '[ $rc -eq 1 ] && grep -q "^awq: " <<<"$err"'
check "metrics" 'A metrics | grep -q "^awqd_requests_total"'
check "metrics --json" 'A --json metrics | python3 -c "import json,sys; d=json.load(sys.stdin); assert any(k.startswith(\"awqd_\") for k in d)"'

# ---- the interactive chat on a pseudo-terminal
cat >"$T/chat.py" <<'EOF'
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
seen = 0  # each wait looks only at what came after the previous match
def read_until(pat, timeout=30):
    global out, seen
    end = time.time() + timeout
    while time.time() < end and pat not in out[seen:]:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try: d = os.read(fd, 4096)
            except OSError: break
            if not d: break
            out += d
    if pat not in out[seen:]: return False
    seen = out.index(pat, seen) + len(pat)
    return True
ok = read_until(b">>> ")
os.write(fd, b"hi\n"); ok = ok and read_until(b"\n>>> ")
os.write(fd, b"/set temperature 0\n"); ok = ok and read_until(b"Set temperature to 0.")
os.write(fd, b"/bye\n")
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(0 if ok and os.waitstatus_to_exitcode(st) == 0 else 1)
EOF
out=$(python3 "$T/chat.py" "$BIN/awq" --socket "$S" run -n 6 2>&1); rc=$?
check "chat: hi, /set temperature 0, /bye (exit 0)" '[ $rc -eq 0 ] && grep -q "awq chat with awqd" <<<"$out"'
[ $rc -eq 0 ] || echo "$out"

# ---- stop
check "stop" '[ "$(A stop)" = "awqd is shutting down" ]'
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
check "the daemon exited" '! kill -0 "$PID" 2>/dev/null'
wait "$PID" 2>/dev/null; PID=
err=$(A status 2>&1); rc=$?
check "after stop: exit 3, cannot connect" '[ $rc -eq 3 ] && grep -qF "cannot connect to awqd at $S" <<<"$err"'

[ $fails -eq 0 ] || { echo "$fails failed"; tail -20 "$T/awqd.log"; exit 1; }
echo "all passed"
