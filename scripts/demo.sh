#!/usr/bin/env bash
# demo: set up, build, write a small random-weight model with the real tokenizer (once), and
# chat with it through awq-run on the CPU (the daemon replaces this later). The weights are
# random, so the reply is gibberish in real tokens: the point is the whole path working.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target awq-run awq-mkmodel
if [ ! -f .cache/demo-model/config.json ]; then
  build/bin/awq-mkmodel --preset demo --tokenizer .cache/tokenizer/tokenizer.json -o .cache/demo-model
fi
build/bin/awq-run generate -m .cache/demo-model -n 32 -- "Hello! Who are you?"
