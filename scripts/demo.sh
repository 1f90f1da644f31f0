#!/usr/bin/env bash
# demo: set up, build, write a small random-weight model with the real tokenizer (once), start
# the daemon on it, ask it one question with the `awq` client, show its status, and stop it.
# The weights are random, so the reply is gibberish in real tokens: the point is the whole
# path working (client -> socket -> daemon -> engine -> tokens streamed back).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# only what the demo runs, so a half-finished tool elsewhere in the tree cannot stop it
cmake --build build -j "$(nproc)" --target awqd awq_cli awq-mkmodel
if [ ! -f .cache/demo-model/config.json ]; then
  build/bin/awq-mkmodel --preset demo --tokenizer .cache/tokenizer/tokenizer.json -o .cache/demo-model
fi

tmp=$(mktemp -d) # private (0700): the daemon refuses a socket directory others can write
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
sock="$tmp/awqd.sock"
awq() { build/bin/awq --socket "$sock" "$@"; }

build/bin/awqd --socket "$sock" --model "$PWD/.cache/demo-model" 2>"$tmp/awqd.log" &
pid=$!
for _ in $(seq 1 300); do # the model loads at start: wait until status answers (30 s at most)
  awq status >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/awqd.log"; echo "demo: awqd exited" >&2; exit 1; }
  sleep 0.1
done
awq status >/dev/null || { cat "$tmp/awqd.log"; exit 1; }

echo '$ awq run "Hello! Who are you?"'
awq run -n 32 "Hello! Who are you?"
echo
echo '$ awq status'
awq status
echo
echo '$ awq stop'
awq stop
wait "$pid"
pid=
