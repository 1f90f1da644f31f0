#!/usr/bin/env bash
# Writes the reference checkpoints of tests/reference/cases.json with awq-mkmodel (fixed seeds,
# small shapes) into OUTDIR/<name>, for logits_ref.py on the GPU machine:
#   bash tests/reference/mkcases.sh BUILD_BIN_DIR TOKENIZER_JSON OUTDIR
#   python3 tests/reference/logits_ref.py OUTDIR > tests/reference/logits_ref.json
# test_gen.c writes the same checkpoints again (same tool, same seeds, same bytes) and compares.
set -euo pipefail
BIN=${1:?usage: mkcases.sh BIN_DIR TOKENIZER_JSON OUTDIR}
TOK=${2:?tokenizer.json}
OUT=${3:?output directory}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
cp "$HERE/cases.json" "$OUT/cases.json"
python3 - "$HERE/cases.json" <<'PY' | while IFS=$'\t' read -r name args; do
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    print(c["name"] + "\t" + " ".join(c["args"]))
PY
  rm -rf "${OUT:?}/$name"
  # shellcheck disable=SC2086
  "$BIN/awq-mkmodel" -o "$OUT/$name" --tokenizer "$TOK" $args
done
echo "mkcases: wrote $(ls -d "$OUT"/*/ | wc -l) checkpoints under $OUT"
