# CMake toolchain file: cross-compile for 64-bit Windows with MinGW-w64
# (Debian 12: apt-get install mingw-w64 wine64).
#
#   cmake -S . -B build/mingw -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake \
#     -DAIOPOLL_MINGW_DEPS=$PWD/build/mingw-deps \
#     -DAIOPOLL_WINEPREFIX=$PWD/build/wineprefix
#   cmake --build build/mingw && ctest --test-dir build/mingw
#
# Packages are found under CMAKE_PREFIX_PATH (cache or environment variable)
# and CMAKE_INSTALL_PREFIX, as on a native build: a consumer of a
# cross-installed aiopoll passes -DCMAKE_PREFIX_PATH=<prefix>. AIOPOLL_MINGW_DEPS
# (cache variable or environment variable) is one more such prefix, for the
# cross-built Criterion of tools/build-mingw-criterion.sh. All of them are
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

# Where Windows packages live: the MinGW sysroot, AIOPOLL_MINGW_DEPS, and
# every prefix the user names the usual CMake way (CMAKE_PREFIX_PATH, as a
# cache or environment variable, and CMAKE_INSTALL_PREFIX, where a cross
# build installs its own dependencies). The _MODE_* ONLY settings below
# re-root every search path under these roots, so a prefix that is not one of
# them is searched as <root>/<prefix> and never found; a path inside a root
# is searched as it is.
set(CMAKE_FIND_ROOT_PATH /usr/${_aiopoll_mingw_triple})
set(_aiopoll_user_prefixes ${AIOPOLL_MINGW_DEPS} ${CMAKE_PREFIX_PATH})
if(DEFINED ENV{CMAKE_PREFIX_PATH})
  string(REPLACE ":" ";" _aiopoll_env_prefixes "$ENV{CMAKE_PREFIX_PATH}")
  list(APPEND _aiopoll_user_prefixes ${_aiopoll_env_prefixes})
endif()
if(CMAKE_INSTALL_PREFIX)
  list(APPEND _aiopoll_user_prefixes "${CMAKE_INSTALL_PREFIX}")
endif()
list(APPEND CMAKE_FIND_ROOT_PATH ${_aiopoll_user_prefixes})
list(REMOVE_DUPLICATES CMAKE_FIND_ROOT_PATH)
# try_compile() projects re-read this file without the user's cache.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES CMAKE_PREFIX_PATH)
# pkg-config: only the cross prefixes, never the build machine's .pc files.
set(_aiopoll_pc_dirs "/usr/${_aiopoll_mingw_triple}/lib/pkgconfig")
foreach(_aiopoll_p IN LISTS _aiopoll_user_prefixes)
  list(PREPEND _aiopoll_pc_dirs "${_aiopoll_p}/lib/pkgconfig")
endforeach()
list(REMOVE_DUPLICATES _aiopoll_pc_dirs)
string(REPLACE ";" ":" _aiopoll_pc_dirs "${_aiopoll_pc_dirs}")
set(ENV{PKG_CONFIG_LIBDIR} "${_aiopoll_pc_dirs}")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
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
  # wine-run.sh boots the prefix's session detached from the test's output
  # before running it (why: see the script).
  set(CMAKE_CROSSCOMPILING_EMULATOR
      /usr/bin/env WINEDEBUG=-all "WINEDLLOVERRIDES=mscoree,mshtml=")
  if(AIOPOLL_WINEPREFIX)
    list(APPEND CMAKE_CROSSCOMPILING_EMULATOR "WINEPREFIX=${AIOPOLL_WINEPREFIX}")
  endif()
  list(APPEND CMAKE_CROSSCOMPILING_EMULATOR
       /bin/sh "${CMAKE_CURRENT_LIST_DIR}/wine-run.sh" "${AIOPOLL_WINE}")
endif()
