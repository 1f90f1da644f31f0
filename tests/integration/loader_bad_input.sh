#!/usr/bin/env bash
# loader_bad_input.sh - awq-run inspect on a checkpoint written by awq-mkmodel, then on copies of
# it broken one way each: every bad input exits 1 with exactly one line "awq-run: <reason>" on
# stderr naming the file (and tensor); usage errors exit 2. Needs AWQ_BIN and AWQ_TOKENIZER.
set -u
export LC_ALL=C # sed edits binary shards byte for byte
BIN=${AWQ_BIN:?AWQ_BIN not set}
TOK=${AWQ_TOKENIZER:-}
if [ -z "$TOK" ] || [ ! -f "$TOK" ]; then echo "SKIP: no tokenizer.json (scripts/fetch-tokenizer.sh)"; exit 77; fi
if [ ! -x "$BIN/awq-mkmodel" ] || [ ! -x "$BIN/awq-run" ]; then echo "SKIP: awq-mkmodel / awq-run not built"; exit 77; fi

T=$(mktemp -d /tmp/awq-loader-int.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# inspect DIR: sets rc, out, errtext
inspect() {
  out=$("$BIN/awq-run" inspect "$@" 2>"$T/stderr")
  rc=$?
  errtext=$(cat "$T/stderr")
}

# expect_error NAME DIR CODE SUBSTRING
expect_error() {
  local name=$1 dir=$2 code=$3 want=$4
  inspect -m "$dir"
  if [ "$rc" != "$code" ]; then bad "$name: exit $rc, want $code ($errtext)"; return; fi
  if [ "$(printf '%s\n' "$errtext" | wc -l)" != 1 ]; then bad "$name: stderr is not one line: $errtext"; return; fi
  case "$errtext" in
    "awq-run: "*"$want"*) ok ;;
    *) bad "$name: stderr '$errtext' lacks '$want'" ;;
  esac
}

# fresh NAME: a copy of the good model in $T/NAME
fresh() { rm -rf "$T/$1"; cp -r "$T/good" "$T/$1"; }

S1=model-00001-of-00002.safetensors
S2=model-00002-of-00002.safetensors

echo "-- loader-int-1: a good checkpoint is described"
if ! "$BIN/awq-mkmodel" -o "$T/good" --tokenizer "$TOK" --shards 2 --seed 5 2>"$T/mk.log"; then
  cat "$T/mk.log" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
inspect -m "$T/good"
[ "$rc" = 0 ] && ok || bad "good: exit $rc: $errtext"
for want in '"architecture":"MistralForCausalLM"' '"tensors":49' '"tied":false' '"group_size":32' \
            "\"file\":\"$S2\"" '"quantized_params":73728' '"sliding_window":null'; do
  case "$out" in *"$want"*) ok ;; *) bad "good: output lacks $want: $out" ;; esac
done
"$BIN/awq-mkmodel" -o "$T/tied" --tokenizer "$TOK" --tie 2>/dev/null
inspect -m "$T/tied"
case "$rc:$out" in 0:*'"tensors":48'*'"tied":true'*) ok ;; *) bad "tied: $rc $out" ;; esac

echo "-- loader-int-2: usage errors exit 2"
inspect
[ "$rc" = 2 ] && ok || bad "no -m: exit $rc"
inspect -m "$T/good" extra
[ "$rc" = 2 ] && ok || bad "extra argument: exit $rc"
"$BIN/awq-run" inspect --help >/dev/null && ok || bad "--help"

echo "-- loader-int-3: missing things"
expect_error "no dir" "$T/nope" 1 "nope"
fresh noshard; rm "$T/noshard/$S2"
expect_error "missing shard" "$T/noshard" 1 "$S2: shard not found (named by model.safetensors.index.json)"
fresh nocfg; rm "$T/nocfg/config.json"
expect_error "no config" "$T/nocfg" 1 "config.json: not found in"
# rename it (same length, so the header length stays right) in the shard and the index
fresh notensor; sed -i 's/"lm_head.weight"/"lm_head.wEight"/' "$T/notensor/$S2" "$T/notensor/model.safetensors.index.json"
expect_error "missing tensor" "$T/notensor" 1 "tensor lm_head.weight missing"

echo "-- loader-int-4: broken shards"
fresh trunc; truncate -s -10 "$T/trunc/$S2"
expect_error "truncated shard" "$T/trunc" 1 "$S2: lm_head.weight: data span ["
fresh hdrlen; printf '\x00\x00\x00\x10\x00\x00\x00\x00' | dd of="$T/hdrlen/$S1" bs=1 conv=notrunc status=none
expect_error "header > 100 MB" "$T/hdrlen" 1 "$S1: header length 268435456 exceeds the 100 MB cap"
fresh hdrpast; printf '\x00\x00\x00\x02\x00\x00\x00\x00' | dd of="$T/hdrpast/$S1" bs=1 conv=notrunc status=none
expect_error "header past end" "$T/hdrpast" 1 "$S1: header length 33554432 past end of file"
fresh hdrjson; printf '[' | dd of="$T/hdrjson/$S1" bs=1 seek=8 conv=notrunc status=none
expect_error "header JSON" "$T/hdrjson" 1 "$S1: header is not valid JSON"
fresh dtype; sed -i 's/"model.layers.1.mlp.up_proj.qweight":{"dtype":"I32"/"model.layers.1.mlp.up_proj.qweight":{"dtype":"F32"/' "$T/dtype/$S2"
expect_error "wrong dtype" "$T/dtype" 1 "$S2: model.layers.1.mlp.up_proj.qweight: dtype F32, expected I32"
# same byte count, other shape: [64,16] -> [128,8]
fresh shape; sed -i 's/"model.layers.0.mlp.up_proj.qweight":{"dtype":"I32","shape":\[64,16\]/"model.layers.0.mlp.up_proj.qweight":{"dtype":"I32","shape":[128,8]/' "$T/shape/$S1"
expect_error "wrong shape" "$T/shape" 1 "model.layers.0.mlp.up_proj.qweight: shape [128, 8] disagrees with config.json (expected [64, 16])"
# an overlap: point the final norm's span at lm_head's first bytes (same length, both in shard 2)
fresh overlap
lm=$(grep -ao '"lm_head.weight":{[^}]*}' "$T/overlap/$S2" | grep -o 'data_offsets":\[[0-9]*' | grep -o '[0-9]*$')
old=$(grep -ao '"model.norm.weight":{[^}]*}' "$T/overlap/$S2" | grep -o 'data_offsets":\[[0-9]*,[0-9]*\]')
b=${lm}; e=$((lm + 128))
new="data_offsets\":[$b,$e]"
pad=$(( ${#old} - ${#new} ))
sed -i "s/\"model.norm.weight\":{\\([^}]*\\)$(printf '%s' "$old" | sed 's/[][]/\\&/g')/\"model.norm.weight\":{\\1$new$(printf '%*s' $pad '')/" "$T/overlap/$S2"
expect_error "overlap" "$T/overlap" 1 "overlaps"

echo "-- loader-int-5: index and config"
fresh trav; sed -i "s|\"lm_head.weight\": \"$S2\"|\"lm_head.weight\": \"../x.safetensors\"|" "$T/trav/model.safetensors.index.json"
expect_error "shard ../x" "$T/trav" 1 "shard name '../x.safetensors' leaves the model directory"
fresh idxjson; printf '{"weight_map": ' >"$T/idxjson/model.safetensors.index.json"
expect_error "index JSON" "$T/idxjson" 1 "model.safetensors.index.json: invalid JSON"
fresh cfgjson; printf '{"architectures": [' >"$T/cfgjson/config.json"
expect_error "config JSON" "$T/cfgjson" 1 "config.json: invalid JSON near byte"
fresh arch; sed -i 's/MistralForCausalLM/FalconForCausalLM/' "$T/arch/config.json"
expect_error "architecture" "$T/arch" 1 "unsupported architecture 'FalconForCausalLM'"
fresh quant; sed -i 's/"quant_method": "awq"/"quant_method": "gptq"/' "$T/quant/config.json"
expect_error "quantization" "$T/quant" 1 "unsupported quantization 'gptq' (only awq)"
fresh group; sed -i 's/"group_size": 32/"group_size": 48/' "$T/group/config.json"
expect_error "group size" "$T/group" 1 "group size 48 does not divide self_attn.q_proj in-features 64"
fresh gen; printf '{"temperature": "hot"}' >"$T/gen/generation_config.json"
expect_error "generation config" "$T/gen" 1 "generation_config.json: temperature: not a number"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
