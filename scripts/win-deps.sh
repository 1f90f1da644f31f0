#!/usr/bin/env bash
# Cross-builds the C dependencies of the Windows build (libsodium, msgpack-c, cJSON, inih) with
# mingw-w64 from Debian bookworm's source packages, as static libraries with pkg-config files,
# into .cache/win-deps (git-ignored). Cached: a dependency whose stamp exists is not rebuilt, so a
# second run is instant. Run as root (apt). Environment: JOBS (default 2), AWQ_WIN_DEPS (prefix).
#
# Debian ships no mingw builds of these, and the host's -dev packages are Linux objects; the
# source packages are the same versions the Linux build uses, so both builds see one API.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PREFIX=${AWQ_WIN_DEPS:-$ROOT/.cache/win-deps}
WORK=$ROOT/.cache/win-deps-src
HOST=x86_64-w64-mingw32
JOBS=${JOBS:-2}
mkdir -p "$PREFIX/lib/pkgconfig" "$PREFIX/include" "$WORK"

done_() { [ -f "$PREFIX/.done-$1" ]; }
if done_ libsodium && done_ msgpack && done_ cjson && { done_ inih || [ -f "$PREFIX/.none-inih" ]; }; then
  echo "win-deps: cached in $PREFIX"
  exit 0
fi

# ---- tools and sources
need=""
for p in gcc-mingw-w64-x86-64 cmake ninja-build autoconf automake libtool dpkg-dev make; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
  echo "win-deps: installing$need"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
SRCLIST=/etc/apt/sources.list.d/awqd-bookworm-src.sources
if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' >"$SRCLIST"
  apt-get update -qq
fi

# fetch <source package>: unpack it under $WORK once; prints the source directory.
fetch() {
  local d
  d=$(find "$WORK" -maxdepth 1 -type d -name "$1-[0-9]*" | head -n1)
  if [ -z "$d" ]; then
    (cd "$WORK" && apt-get source -qq "$1" >/dev/null 2>&1) || return 1
    d=$(find "$WORK" -maxdepth 1 -type d -name "$1-[0-9]*" | head -n1)
  fi
  [ -n "$d" ] && echo "$d"
}

# CMake projects: a static, test-free, C-only build with the same compiler as awqd.
cmake_dep() { # <srcdir> <builddir> <options...>
  local src=$1 bld=$2
  shift 2
  cmake -S "$src" -B "$bld" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_SYSTEM_NAME=Windows \
    -DCMAKE_C_COMPILER=$HOST-gcc -DCMAKE_RC_COMPILER=$HOST-windres -DCMAKE_INSTALL_PREFIX="$PREFIX" \
    -DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DCMAKE_POLICY_DEFAULT_CMP0077=NEW "$@" >/dev/null
  cmake --build "$bld" -j "$JOBS" >/dev/null
  cmake --install "$bld" >/dev/null
}

# ---- libsodium (autotools; about 2 minutes on 2 cores)
if ! done_ libsodium; then
  t=$SECONDS
  src=$(fetch libsodium)
  (
    cd "$src"
    [ -x configure ] || ./autogen.sh -s >/dev/null 2>&1
    ./configure -q --host=$HOST --prefix="$PREFIX" --libdir="$PREFIX/lib" --disable-shared --enable-static \
      --disable-dependency-tracking --disable-ssp >/dev/null
    make -s -j "$JOBS" -C src/libsodium install >/dev/null
    make -s install-pkgconfigDATA >/dev/null 2>&1 || cp libsodium.pc "$PREFIX/lib/pkgconfig/"
  )
  touch "$PREFIX/.done-libsodium"
  echo "win-deps: libsodium built in $((SECONDS - t)) s"
fi

# ---- msgpack-c 4 (the C library only)
if ! done_ msgpack; then
  t=$SECONDS
  src=$(fetch msgpack-c)
  # its project() line would enable C++ too, and there is no mingw g++ here: the library is C
  sed -i 's/^PROJECT (msgpack)$/PROJECT (msgpack C)/' "$src/CMakeLists.txt"
  cmake_dep "$src" "$WORK/msgpack-build" -DMSGPACK_BUILD_TESTS=OFF -DMSGPACK_BUILD_EXAMPLES=OFF \
    -DMSGPACK_ENABLE_SHARED=OFF -DMSGPACK_ENABLE_STATIC=ON -DMSGPACK_ENABLE_CXX=OFF
  touch "$PREFIX/.done-msgpack"
  echo "win-deps: msgpack-c built in $((SECONDS - t)) s"
fi

# ---- cJSON
if ! done_ cjson; then
  t=$SECONDS
  src=$(fetch cjson)
  cmake_dep "$src" "$WORK/cjson-build" -DENABLE_CJSON_TEST=OFF -DENABLE_CJSON_UTILS=OFF \
    -DENABLE_CUSTOM_COMPILER_FLAGS=OFF -DENABLE_TARGET_EXPORT=OFF
  touch "$PREFIX/.done-cjson"
  echo "win-deps: cJSON built in $((SECONDS - t)) s"
fi

# ---- inih: one C file; built directly (no meson needed) with Debian's default options, which
# are inih's own defaults, so ini.h needs no extra -D flags on either platform.
if ! done_ inih && [ ! -f "$PREFIX/.none-inih" ]; then
  if src=$(fetch libinih); then
    $HOST-gcc -O2 -c "$src/ini.c" -o "$WORK/ini.o"
    rm -f "$PREFIX/lib/libinih.a"
    $HOST-ar rcs "$PREFIX/lib/libinih.a" "$WORK/ini.o"
    cp "$src/ini.h" "$PREFIX/include/"
    ver=$(basename "$src" | sed 's/^libinih-//')
    printf 'prefix=%s\nincludedir=${prefix}/include\nlibdir=${prefix}/lib\n\nName: inih\nDescription: simple .INI file parser\nVersion: %s\nLibs: -L${libdir} -linih\nCflags: -I${includedir}\n' \
      "$PREFIX" "$ver" >"$PREFIX/lib/pkgconfig/inih.pc"
    touch "$PREFIX/.done-inih"
    echo "win-deps: inih built"
  else
    # Without inih the Windows build leaves config/ (and what needs it) out; CMake says so.
    touch "$PREFIX/.none-inih"
    echo "win-deps: the libinih source package could not be fetched; config/ is skipped on Windows"
  fi
fi
echo "win-deps: ready in $PREFIX"
