#!/usr/bin/env bash
# tok_cli - `awq-run tokenize` / `awq-run detokenize` against the real Mistral tokenizer: the
# exact output contract (JSON ids + newline; text with no newline added), BOS handling, and the
# exit codes (1 bad input with one "awq-run: ..." line, 2 usage). Skips without the binary or
# the fetched tokenizer.
set -u
RUN="${AWQ_BIN:-build/bin}/awq-run"
TOK="${AWQ_TOKENIZER:-}"
[ -x "$RUN" ] || { echo "SKIP: $RUN is not built"; exit 77; }
[ -n "$TOK" ] && [ -f "$TOK" ] || { echo "SKIP: no fetched tokenizer (scripts/fetch-tokenizer.sh)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$TOK" "$dir/tokenizer.json"
cp "$(dirname "$TOK")/tokenizer_config.json" "$dir/tokenizer_config.json"
fail=0
check() { # name, expected, actual
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2] got [$3]"; fail=1; fi
}
# expect_exit name code command... : exit code and a one-line "awq-run: " error
expect_exit() {
  local name=$1 code=$2; shift 2
  "$@" >"$dir/out" 2>"$dir/err"
  local rc=$?
  check "$name exit" "$code" "$rc"
  if [ "$code" = 1 ]; then
    check "$name stderr" "1 awq-run:" "$(wc -l <"$dir/err" | tr -d ' ') $(cut -c1-8 "$dir/err" | head -1)"
  fi
}

check "tokenize Hello" '{"ids":[1,22557]}' "$("$RUN" tokenize -m "$dir" -- Hello)"
check "tokenize --no-bos" '{"ids":[22557]}' "$("$RUN" tokenize -m "$dir" --no-bos -- Hello)"
check "tokenize empty" '{"ids":[1]}' "$("$RUN" tokenize -m "$dir" -- '')"
check "tokenize -t" '{"ids":[1,1318,28705,1,28705,337]}' "$("$RUN" tokenize -t "$dir/tokenizer.json" -- 'x <s> y')"
check "tokenize -f stdin" '{"ids":[1,22557]}' "$(printf Hello | "$RUN" tokenize -m "$dir" -f -)"
# the output is the JSON line and exactly one newline
check "tokenize newline" "$(printf '{"ids":[1,22557]}\n' | od -c)" "$("$RUN" tokenize -m "$dir" -- Hello | od -c)"

"$RUN" detokenize -m "$dir" -- 1 22557 >"$dir/d1"
check "detokenize bytes" "$(printf '<s> Hello' | od -c)" "$(od -c <"$dir/d1")"
"$RUN" detokenize -m "$dir" --skip-special -- 1 22557 13 >"$dir/d2"
check "detokenize --skip-special" "$(printf 'Hello\n' | od -c)" "$(od -c <"$dir/d2")"
"$RUN" detokenize -m "$dir" -- >"$dir/d3"
check "detokenize nothing" "0" "$(wc -c <"$dir/d3" | tr -d ' ')"
# a round trip through both commands
ids=$("$RUN" tokenize -m "$dir" --no-bos -- '日本語 😀 𠮷 ok' | tr -d '{}"ids:[]' | tr ',' ' ')
# shellcheck disable=SC2086
check "round trip" '日本語 😀 𠮷 ok' "$("$RUN" detokenize -m "$dir" -- $ids)"

expect_exit "bad utf-8" 1 "$RUN" tokenize -m "$dir" -- "$(printf 'ab\xff')"
grep -q "invalid UTF-8 at byte 2" "$dir/err" || { echo "FAIL bad utf-8 message: $(cat "$dir/err")"; fail=1; }
expect_exit "id out of range" 1 "$RUN" detokenize -m "$dir" -- 1 32000
grep -q "token id 32000 at position 1 is out of range" "$dir/err" || { echo "FAIL range message: $(cat "$dir/err")"; fail=1; }
expect_exit "id not a number" 1 "$RUN" detokenize -m "$dir" -- 1 x2
expect_exit "missing model dir" 1 "$RUN" tokenize -m "$dir/nope" -- a
grep -q "nope/tokenizer.json" "$dir/err" || { echo "FAIL missing dir message: $(cat "$dir/err")"; fail=1; }
printf '{"model": {"type": "Unigram"}}' >"$dir/bad.json"
expect_exit "unsupported model" 1 "$RUN" tokenize -t "$dir/bad.json" -- a
grep -q "model type Unigram is not supported" "$dir/err" || { echo "FAIL unigram message: $(cat "$dir/err")"; fail=1; }
expect_exit "no -m" 2 "$RUN" tokenize -- a
expect_exit "two texts" 2 "$RUN" tokenize -m "$dir" -- a b
expect_exit "unknown option" 2 "$RUN" detokenize -m "$dir" --bogus -- 1
exit $fail
