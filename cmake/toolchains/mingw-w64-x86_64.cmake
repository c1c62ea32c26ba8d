# CMake toolchain file: cross-compile for 64-bit Windows with MinGW-w64
# (Debian 12: apt-get install mingw-w64 wine64).
#
#   cmake -S . -B build/mingw -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
#     -DAIOPOLL_MINGW_DEPS=$PWD/build/mingw-deps \
#     -DAIOPOLL_WINEPREFIX=$PWD/build/wineprefix
#   cmake --build build/mingw && ctest --test-dir build/mingw
#
# AIOPOLL_MINGW_DEPS (cache variable or environment variable) names a prefix
# holding cross-built dependencies (see tools/build-mingw-criterion.sh); it is
# searched by find_package/find_library/find_path and by pkg-config.
#
# Test executables are run through Wine (CMAKE_CROSSCOMPILING_EMULATOR), so
# ctest works in the build tree.  Consumers should link test executables with
# -static (covers libgcc and libwinpthread, which -pthread pulls in; plain
# -static-libgcc still leaves libwinpthread-1.dll to be found by Wine) so Wine
# needs no MinGW runtime DLLs; this file deliberately sets no global compile
# or link flags.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_aiopoll_mingw_triple x86_64-w64-mingw32)

set(CMAKE_C_COMPILER   ${_aiopoll_mingw_triple}-gcc)
set(CMAKE_CXX_COMPILER ${_aiopoll_mingw_triple}-g++)
set(CMAKE_RC_COMPILER  ${_aiopoll_mingw_triple}-windres)
# Dependency prefix: -DAIOPOLL_MINGW_DEPS=... or the environment variable.
if(NOT DEFINED AIOPOLL_MINGW_DEPS AND DEFINED ENV{AIOPOLL_MINGW_DEPS})
  set(AIOPOLL_MINGW_DEPS "$ENV{AIOPOLL_MINGW_DEPS}")
endif()
set(AIOPOLL_MINGW_DEPS "${AIOPOLL_MINGW_DEPS}" CACHE PATH
    "Prefix with cross-built MinGW dependencies (e.g. build/mingw-deps)")
# try_compile() projects re-read this file; forward the variable to them.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES AIOPOLL_MINGW_DEPS)

set(CMAKE_FIND_ROOT_PATH /usr/${_aiopoll_mingw_triple})
if(AIOPOLL_MINGW_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH "${AIOPOLL_MINGW_DEPS}")
  # pkg-config: only the cross prefix, never the build machine's .pc files.
  set(ENV{PKG_CONFIG_LIBDIR} "${AIOPOLL_MINGW_DEPS}/lib/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
else()
  set(ENV{PKG_CONFIG_LIBDIR} "/usr/${_aiopoll_mingw_triple}/lib/pkgconfig")
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Run cross-built executables (ctest, add_custom_command on targets) under
# Wine.  On Debian 12 /usr/bin/wine prefers the 32-bit loader (package
# wine32:i386) when it is installed; /usr/lib/wine/wine64 always runs 64-bit
# PE executables directly, so prefer it.
find_program(AIOPOLL_WINE
  NAMES wine64 wine64-stable wine wine-stable
  PATHS /usr/lib/wine /usr/lib/x86_64-linux-gnu/wine /opt/wine-stable/bin
  NO_CMAKE_FIND_ROOT_PATH)
# Optional Wine prefix for the emulator (e.g. build/wineprefix made by
# tools/build-mingw-criterion.sh); otherwise Wine uses $WINEPREFIX or ~/.wine.
if(NOT DEFINED AIOPOLL_WINEPREFIX AND DEFINED ENV{AIOPOLL_WINEPREFIX})
  set(AIOPOLL_WINEPREFIX "$ENV{AIOPOLL_WINEPREFIX}")
endif()
set(AIOPOLL_WINEPREFIX "${AIOPOLL_WINEPREFIX}" CACHE PATH
    "Wine prefix used to run test executables (empty: Wine's default)")
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES AIOPOLL_WINEPREFIX)
if(AIOPOLL_WINE)
  # Quiet, non-interactive Wine: no debug channels, no Mono/Gecko prompts.
  set(CMAKE_CROSSCOMPILING_EMULATOR
      /usr/bin/env WINEDEBUG=-all "WINEDLLOVERRIDES=mscoree,mshtml=")
  if(AIOPOLL_WINEPREFIX)
    list(APPEND CMAKE_CROSSCOMPILING_EMULATOR "WINEPREFIX=${AIOPOLL_WINEPREFIX}")
  endif()
  list(APPEND CMAKE_CROSSCOMPILING_EMULATOR "${AIOPOLL_WINE}")
endif()
