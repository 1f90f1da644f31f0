#!/usr/bin/env bash
# awq_run_template.sh - `awq-run template` end to end: the chat_template, bos_token and eos_token
# of a tokenizer_config.json (string, named-list and AddedToken forms), messages on stdin, the
# prompt on stdout byte for byte with no added newline; bad input exits 1 with one line
# "awq-run: ..." on stderr, usage errors exit 2. Needs AWQ_BIN and AWQ_SRC; no model weights.
set -u
BIN=${AWQ_BIN:?AWQ_BIN not set}
SRC=${AWQ_SRC:?AWQ_SRC not set}
if [ ! -x "$BIN/awq-run" ]; then echo "SKIP: awq-run not built"; exit 77; fi
if ! command -v python3 >/dev/null; then echo "SKIP: python3 needed to write the JSON fixtures"; exit 77; fi

T=$(mktemp -d /tmp/awq-template-int.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# config DIR TEMPLATE_FILE FORM: writes DIR/tokenizer_config.json (FORM: string | list | addedtoken)
config() {
  mkdir -p "$1"
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
d, tf, form = sys.argv[1:4]
t = open(tf, encoding="utf-8", newline="").read()
cfg = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": t}
if form == "list":
    cfg["chat_template"] = [{"name": "tool_use", "template": "{{ 'wrong' }}"}, {"name": "default", "template": t}]
if form == "addedtoken":
    cfg["bos_token"] = {"__type": "AddedToken", "content": "<s>", "lstrip": False}
    cfg["eos_token"] = {"__type": "AddedToken", "content": "</s>", "lstrip": False}
json.dump(cfg, open(d + "/tokenizer_config.json", "w"))
PY
}

# run DIR [ARGS...] < stdin: sets rc, out (exact bytes in $T/out), errtext
run() {
  local dir=$1
  shift
  "$BIN/awq-run" template -m "$dir" "$@" >"$T/out" 2>"$T/stderr"
  rc=$?
  errtext=$(cat "$T/stderr")
}

MSGS='[{"role":"system","content":"Be brief."},{"role":"user","content":" Hi\n"},{"role":"assistant","content":"Hello."},{"role":"user","content":"日本語 😀"}]'

# 1: llama2 in all three config forms gives the same exact bytes
for form in string list addedtoken; do
  config "$T/llama2-$form" "$SRC/tests/data/templates/llama2.jinja" "$form"
  run "$T/llama2-$form" <<<"$MSGS"
  printf '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] 日本語 😀 [/INST]' >"$T/want"
  if [ "$rc" = 0 ] && cmp -s "$T/out" "$T/want" && [ -z "$errtext" ]; then ok; else bad "llama2 $form: rc=$rc err=$errtext out=$(cat "$T/out")"; fi
done

# 2: chatml with and without the generation prompt, no trailing newline added by awq-run
config "$T/chatml" "$SRC/tests/data/templates/chatml.jinja" string
run "$T/chatml" <<<'[{"role":"user","content":"Hi"}]'
printf '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n' >"$T/want"
if [ "$rc" = 0 ] && cmp -s "$T/out" "$T/want"; then ok; else bad "chatml gen: rc=$rc $errtext"; fi
run "$T/chatml" --no-generation-prompt <<<'[{"role":"user","content":"Hi"}]'
printf '<|im_start|>user\nHi<|im_end|>\n' >"$T/want"
if [ "$rc" = 0 ] && cmp -s "$T/out" "$T/want"; then ok; else bad "chatml nogen: rc=$rc $errtext"; fi

# expect_fail NAME CODE SUBSTRING DIR [ARGS] < stdin
expect_fail() {
  local name=$1 code=$2 want=$3
  shift 3
  run "$@"
  local lines
  lines=$(printf '%s\n' "$errtext" | wc -l)
  if [ "$rc" != "$code" ]; then bad "$name: exit $rc, want $code ($errtext)"; return; fi
  if [ "$code" = 1 ] && [ "$lines" != 1 ]; then bad "$name: $lines stderr lines: $errtext"; return; fi
  case "$errtext" in *"$want"*) ok ;; *) bad "$name: stderr '$errtext' lacks '$want'" ;; esac
  if [ -s "$T/out" ]; then bad "$name: printed something on stdout"; fi
}

# 3: the template's own exception
expect_fail "raise_exception" 1 "awq-run: template: Conversation roles must alternate" "$T/llama2-string" <<<'[{"role":"user","content":"a"},{"role":"user","content":"b"}]'
# 4: bad messages
expect_fail "not an array" 1 "awq-run: stdin: messages: expected a JSON array" "$T/chatml" <<<'{"role":"user"}'
expect_fail "null content" 1 "\"content\" must be a string, not null" "$T/chatml" <<<'[{"role":"user","content":null}]'
expect_fail "broken json" 1 "invalid JSON" "$T/chatml" <<<'[{"role":'
# 5: bad configs
mkdir -p "$T/none" "$T/nolist" "$T/syntax" "$T/badtok" "$T/notjson"
echo '{"bos_token":"<s>"}' >"$T/none/tokenizer_config.json"
expect_fail "no template" 1 "has no chat_template" "$T/none" <<<'[]'
echo '{"chat_template":[{"name":"rag","template":"x"}]}' >"$T/nolist/tokenizer_config.json"
expect_fail "no default" 1 "no entry named \"default\"" "$T/nolist" <<<'[]'
echo '{"chat_template":"{% for m in messages %}{{ m.content }}"}' >"$T/syntax/tokenizer_config.json"
expect_fail "syntax" 1 "chat_template: line 1, column 39: unexpected end of template, expected 'endfor' or 'else'" "$T/syntax" <<<'[]'
echo '{"chat_template":"x","bos_token":5}' >"$T/badtok/tokenizer_config.json"
expect_fail "bad token" 1 "bos_token/eos_token must be a string" "$T/badtok" <<<'[]'
echo 'nope' >"$T/notjson/tokenizer_config.json"
expect_fail "not json" 1 "not a JSON object" "$T/notjson" <<<'[]'
expect_fail "missing dir" 1 "tokenizer_config.json" "$T/absent" <<<'[]'
# 6: usage
"$BIN/awq-run" template >/dev/null 2>&1
if [ $? = 2 ]; then ok; else bad "no -m: want exit 2"; fi
"$BIN/awq-run" template -m "$T/chatml" --bogus </dev/null >/dev/null 2>&1
if [ $? = 2 ]; then ok; else bad "unknown option: want exit 2"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
