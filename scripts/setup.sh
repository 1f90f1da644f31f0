#!/usr/bin/env bash
# Installs what awqd needs to build and test on Debian 12 (run as root; apt and npm reachable),
# then fetches the real Mistral tokenizer used by the tests. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential cmake ninja-build pkg-config clang llvm libsodium-dev libmsgpack-dev
libinih-dev libcjson-dev ca-certificates util-linux procps psmisc libayatana-appindicator3-dev xvfb xdotool imagemagick trayer"
# npm fetches the test tokenizer; a nodesource nodejs already ships npm (Debian's npm would conflict)
command -v npm >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"
[ "${AWQ_WINDOWS:-1}" = 1 ] && PKGS="$PKGS gcc-mingw-w64-x86-64 wine wine64 nsis"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
bash scripts/fetch-tokenizer.sh
