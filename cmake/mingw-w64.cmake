# mingw-w64.cmake - cross-compile awqd for 64-bit Windows with mingw-w64 (Debian's
# gcc-mingw-w64-x86-64) and run its tests through wine.
#
#   bash scripts/win-deps.sh     # libsodium, msgpack-c, cJSON, inih into .cache/win-deps
#   PKG_CONFIG_LIBDIR=$PWD/.cache/win-deps/lib/pkgconfig \
#     cmake -S . -B build-win -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake -DAWQ_CUDA=OFF
#
# The dependencies are looked up only under the mingw sysroot and the cross-built prefix, never
# in the host's /usr: a host library would link into a Windows binary and fail late and oddly.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(AWQ_MINGW_PREFIX x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${AWQ_MINGW_PREFIX}-gcc)
set(CMAKE_RC_COMPILER ${AWQ_MINGW_PREFIX}-windres)
set(CMAKE_AR ${AWQ_MINGW_PREFIX}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${AWQ_MINGW_PREFIX}-ranlib CACHE FILEPATH "")

# The cross-built dependencies (scripts/win-deps.sh); AWQ_WIN_DEPS overrides the location.
if(NOT DEFINED AWQ_WIN_DEPS)
  if(DEFINED ENV{AWQ_WIN_DEPS})
    set(AWQ_WIN_DEPS $ENV{AWQ_WIN_DEPS})
  else()
    get_filename_component(AWQ_WIN_DEPS "${CMAKE_CURRENT_LIST_DIR}/../.cache/win-deps" ABSOLUTE)
  endif()
endif()
set(CMAKE_FIND_ROOT_PATH /usr/${AWQ_MINGW_PREFIX} ${AWQ_WIN_DEPS})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config must read only the cross-built .pc files (their paths are absolute already).
set(ENV{PKG_CONFIG_LIBDIR} "${AWQ_WIN_DEPS}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# Static: the programs then need no libgcc / libwinpthread DLLs beside them, under wine or not.
# mingw's own C99 printf family (%zu, %lld), not the MS runtime's; see AWQ_PRINTF in awq_err.h.
set(CMAKE_C_FLAGS_INIT "-D__USE_MINGW_ANSI_STDIO=1")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static-libgcc")

# add_test commands run through wine (tests/unit become Windows programs).
find_program(AWQ_WINE NAMES wine wine64)
if(AWQ_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${AWQ_WINE})
endif()
