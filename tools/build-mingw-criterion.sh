#!/usr/bin/env bash
# Cross-build the Criterion unit-test framework (and what it needs) for
# MinGW-w64 (x86_64-w64-mingw32) from Debian 12's own source packages, and
# check that Criterion test executables run under Wine.
#
# Usage: tools/build-mingw-criterion.sh [PREFIX]       (run as root)
#   PREFIX defaults to $PWD/build/mingw-deps.
#   Work files (sources, build trees, verification) go to PREFIX/../mingw-deps-work,
#   the Wine prefix to PREFIX/../wineprefix (override with WINEPREFIX).
#
# Components, all static libraries (no DLL needed at run time):
#   libffi   (autotools)  -> Criterion theories
#   nanomsg  (CMake)      -> runner <-> worker IPC
#   boxfort  (meson)      -> process isolation / timeouts
#   criterion (meson)     -> nanopb (Debian's nanopb orig) built as its bundled
#                            meson/CMake subproject; diffs (libgit2) and i18n off
# A stamp file per component (PREFIX/.stamps/NAME) records the version and the
# recipe revision; a second run skips finished components (~0.2 s).
#
# The Wine checks (section 4) run once per build and Wine version (stamp
# "verified"); FORCE_VERIFY=1 re-runs them, SKIP_VERIFY=1 skips them.
# JOBS=N sets build parallelism (default: nproc).
set -euo pipefail

RECIPE_REV=3                      # bump to force rebuilding every component
TRIPLE=x86_64-w64-mingw32

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="${1:-$PWD/build/mingw-deps}"
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"
BASE="$(dirname "$PREFIX")"
WORK="$BASE/mingw-deps-work"
SRC="$WORK/src"
STAMPS="$PREFIX/.stamps"
JOBS="${JOBS:-$(nproc)}"
TOOLCHAIN="$ROOT/cmake/toolchains/mingw-w64-x86_64.cmake"
mkdir -p "$WORK" "$SRC" "$STAMPS"

T0=$SECONDS
log() { printf '\n=== [%3ds] %s\n' "$((SECONDS - T0))" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs Debian packages)"
[ -f "$TOOLCHAIN" ] || die "missing $TOOLCHAIN"

# --------------------------------------------------------------------------
# 1. Build-machine packages (only what is missing).
# --------------------------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
}
need_pkgs=()
need() { # need PACKAGE [COMMAND]
    local pkg="$1" cmd="${2:-}"
    if [ -n "$cmd" ]; then
        command -v "$cmd" >/dev/null 2>&1 && return 0
    else
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' && return 0
    fi
    need_pkgs+=("$pkg")
}
need gcc-mingw-w64-x86-64 "$TRIPLE-gcc"
need g++-mingw-w64-x86-64 "$TRIPLE-g++"
need binutils-mingw-w64-x86-64 "$TRIPLE-windres"
need mingw-w64-x86-64-dev
need wine64
need wine wine
need meson meson
need ninja-build ninja
need cmake cmake
need pkg-config pkg-config
need dpkg-dev dpkg-source
need make make
need python3 python3
need xz-utils xz
need patch patch
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    log "installing: ${need_pkgs[*]}"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

WINE_BIN=""
for w in wine64 /usr/lib/wine/wine64 wine; do
    if command -v "$w" >/dev/null 2>&1; then WINE_BIN="$(command -v "$w")"; break; fi
done
[ -n "$WINE_BIN" ] || die "no wine binary found"

# --------------------------------------------------------------------------
# 2. deb-src entry + source packages (orig tarballs).
# --------------------------------------------------------------------------
# criterion's orig tarball lacks its git submodules dependencies/debugbreak
# and dependencies/klib (the Debian packaging tarball, which is not always
# on the mirror, supplies them).  debugbreak.h comes from Debian's debugbreak
# source; khash.h (+ kstring.h, kroundup.h, hts_defs.h it includes) from
# Debian's htslib source, which bundles klib's khash.h with kh_foreach; the
# few kvec.h macros Criterion uses are generated below.
SRC_PKGS=(criterion boxfort nanomsg nanopb libffi debugbreak htslib)

have_sources() {
    local p
    for p in "${SRC_PKGS[@]}"; do
        compgen -G "$SRC/${p}_*.orig.tar.*" >/dev/null || return 1
    done
}

ensure_deb_src() {
    # Is there any deb-src line/stanza for bookworm main already?
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        if grep -qE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' "$f" &&
            grep -q 'debian' "$f"; then
            return 0
        fi
    done
    f=/etc/apt/sources.list.d/debian-src.sources
    log "adding $f (Types: deb-src)"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        # Mirror the binary stanzas (URIs, Suites, Components, Signed-By).
        awk 'BEGIN{RS=""; ORS="\n\n"} /(^|\n)Types:[^\n]*deb/ {
                 gsub(/(^|\n)#[^\n]*/, "");
                 sub(/Types:[^\n]*/, "Types: deb-src"); print }' \
            /etc/apt/sources.list.d/debian.sources >"$f.tmp"
        # Mirror only the official Debian stanzas.
        grep -q 'debian' "$f.tmp" || rm -f "$f.tmp"
    fi
    if [ ! -s "$f.tmp" ] 2>/dev/null; then
        cat >"$f.tmp" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    mv "$f.tmp" "$f"
    apt-get update -q >/dev/null
    APT_UPDATED=1
}

if ! have_sources; then
    ensure_deb_src
    log "apt-get source --download-only ${SRC_PKGS[*]}"
    # The .debian.tar.xz may be missing from the mirror (404): apt-get then
    # fails, but the .dsc and .orig.tar.* are already there, which is all we use.
    fetch_sources() {
        (cd "$SRC" && apt-get source --download-only "${SRC_PKGS[@]}" >"$SRC/apt-get-source.log" 2>&1) ||
            echo "note: apt-get source reported errors (see $SRC/apt-get-source.log); checking orig tarballs"
    }
    fetch_sources
    if ! have_sources && [ "$APT_UPDATED" = 0 ]; then
        apt_update_once     # stale or missing Sources lists
        fetch_sources
    fi
    have_sources || die "orig tarballs missing in $SRC (see $SRC/apt-get-source.log)"
fi

orig_of() { compgen -G "$SRC/${1}_*.orig.tar.*" | sort -V | tail -n1; }
version_of() { local o; o="$(basename "$(orig_of "$1")")"; o="${o#"${1}"_}"; echo "${o%.orig.tar.*}"; }
# unpack PKG -> prints the fresh source directory (WORK/PKG-src)
unpack() {
    local pkg="$1" d="$WORK/$1-src"
    rm -rf "$d" && mkdir -p "$d"
    tar -xf "$(orig_of "$pkg")" -C "$d" --strip-components=1
    echo "$d"
}

V_FFI="$(version_of libffi)"
V_NN="$(version_of nanomsg)"
V_BXF="$(version_of boxfort)"
V_PB="$(version_of nanopb)"
V_CR="$(version_of criterion)"
V_DBG="$(version_of debugbreak)"
V_HTS="$(version_of htslib)"

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { echo "$2" >"$STAMPS/$1"; }

# Isolated pkg-config / toolchain environment for all builds.
export PKG_CONFIG_LIBDIR="$PREFIX/lib/pkgconfig"
export PKG_CONFIG_PATH=""
unset PKG_CONFIG_SYSROOT_DIR CFLAGS CXXFLAGS LDFLAGS CPPFLAGS || true

# --------------------------------------------------------------------------
# meson cross file (generated)
# --------------------------------------------------------------------------
CROSS="$WORK/meson-cross-$TRIPLE.ini"
cat >"$CROSS" <<EOF
[binaries]
c = '$TRIPLE-gcc'
cpp = '$TRIPLE-g++'
ar = '$TRIPLE-ar'
strip = '$TRIPLE-strip'
windres = '$TRIPLE-windres'
pkgconfig = 'pkg-config'
cmake = 'cmake'

[properties]
pkg_config_libdir = ['$PREFIX/lib/pkgconfig']
needs_exe_wrapper = true

[cmake]
CMAKE_SYSTEM_NAME = 'Windows'
CMAKE_SYSTEM_PROCESSOR = 'x86_64'

[host_machine]
system = 'windows'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
EOF

meson_build() { # meson_build SRCDIR BUILDDIR [meson options...]
    local s="$1" b="$2"; shift 2
    rm -rf "$b"
    meson setup "$b" "$s" --cross-file "$CROSS" --prefix "$PREFIX" --libdir lib \
        --buildtype release --default-library static --wrap-mode nodownload "$@"
    ninja -C "$b" -j "$JOBS"
    ninja -C "$b" install
}

# --------------------------------------------------------------------------
# 3. Components
# --------------------------------------------------------------------------
# libffi (autotools) ---------------------------------------------------------
KEY="libffi $V_FFI r$RECIPE_REV"
if stamp_ok libffi "$KEY"; then
    log "libffi $V_FFI: up to date"
else
    log "libffi $V_FFI: building"
    s="$(unpack libffi)"
    mkdir -p "$WORK/libffi-build"
    (cd "$WORK/libffi-build" && rm -rf ./* &&
        "$s/configure" --host="$TRIPLE" --build="$(gcc -dumpmachine)" --prefix="$PREFIX" \
            --libdir="$PREFIX/lib" --enable-static --disable-shared --disable-docs \
            --disable-multi-os-directory >configure.log 2>&1 ||
            { tail -30 configure.log; exit 1; }
        make -j "$JOBS" >make.log 2>&1 || { tail -40 make.log; exit 1; }
        make install >install.log 2>&1 || { tail -30 install.log; exit 1; })
    stamp_set libffi "$KEY"
fi

# nanomsg (CMake) ------------------------------------------------------------
KEY="nanomsg $V_NN r$RECIPE_REV pc2"
if stamp_ok nanomsg "$KEY"; then
    log "nanomsg $V_NN: up to date"
else
    log "nanomsg $V_NN: building"
    s="$(unpack nanomsg)"
    b="$WORK/nanomsg-build"
    rm -rf "$b"
    cmake -S "$s" -B "$b" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
        -DNN_STATIC_LIB=ON -DNN_TESTS=OFF -DNN_TOOLS=OFF -DNN_ENABLE_DOC=OFF \
        -DNN_ENABLE_NANOCAT=OFF >"$WORK/nanomsg-cmake.log" 2>&1 ||
        { tail -30 "$WORK/nanomsg-cmake.log"; exit 1; }
    cmake --build "$b" -j "$JOBS"
    cmake --install "$b" >/dev/null
    # Static-only install: make the .pc file say so (consumers need the
    # Windows socket libs and NN_STATIC_LIB, else nn.h dllimports).
    pc="$PREFIX/lib/pkgconfig/nanomsg.pc"
    sed -i -e 's|^Libs: .*|Libs: -L${libdir} -lnanomsg -lws2_32 -lmswsock -ladvapi32|' \
        -e 's|^Cflags: .*|Cflags: -I${includedir} -DNN_STATIC_LIB|' "$pc"
    stamp_set nanomsg "$KEY"
fi

# boxfort (meson) --------------------------------------------------------------
KEY="boxfort $V_BXF r$RECIPE_REV cmdline-fix timer-lifetime"
if stamp_ok boxfort "$KEY"; then
    log "boxfort $V_BXF: up to date"
else
    log "boxfort $V_BXF: building"
    s="$(unpack boxfort)"
    # Fix a Windows-only bug in boxfort 0.1.2 (src/sandbox-windows.c): the
    # worker command line "boxfort-worker BXFI_MAP=Local\bxfi_<pid>" is sized
    # from the *executable path* instead of the map name, so for executables
    # whose full path is shorter than ~26 characters the map name is cut off
    # (and not NUL-terminated): every test then fails with
    # "Could not spawn test instance: No child processes".
    sed -i 's|SIZE_T size    = _sctprintf(fmt, filename, env_map);|SIZE_T size    = _sctprintf(fmt, env_map) + 1;|' \
        "$s/src/sandbox-windows.c"
    grep -q '_sctprintf(fmt, env_map) + 1;' "$s/src/sandbox-windows.c" ||
        die "boxfort: could not apply the command-line size fix"
    # A second Windows-only bug: a sandbox's timeout timer is never deleted
    # (bxfi_cancel_timeout is empty), so it fires after bxf_term() freed the
    # instance it names. The next test's instance usually reuses that memory,
    # and the stale timer kills its process: a test "Timed out" after the
    # *previous* test's timeout (30 s into a 300 s stress test), or, when it
    # strikes before the child is set up, "Could not spawn test instance: No
    # child processes". The patch keeps the timers in the instance and
    # deletes them (waiting for a running callback) when the child ends.
    patch -p1 --forward --quiet -d "$s" <"$ROOT/tools/patches/boxfort-0.1.2-windows-timer-lifetime.patch" ||
        die "boxfort: could not apply tools/patches/boxfort-0.1.2-windows-timer-lifetime.patch"
    # Under Wine, CreateProcess fails now and then with ERROR_INTERNAL_ERROR
    # (1359), transiently; boxfort then reported "Could not spawn test
    # instance: Unknown error" (EPROTO, which has no text in msvcrt). The
    # patch tries the call again, up to 5 times, and makes every failing step
    # of a spawn say which it was and its Win32 error on stderr
    # (docs/testing.md, "Under Wine: test instances that could not be
    # spawned").
    patch -p1 --forward --quiet -d "$s" <"$ROOT/tools/patches/boxfort-0.1.2-windows-spawn-retry.patch" ||
        die "boxfort: could not apply tools/patches/boxfort-0.1.2-windows-spawn-retry.patch"
    meson_build "$s" "$WORK/boxfort-build" -Dsamples=false -Dtests=false
    stamp_set boxfort "$KEY"
fi

# criterion (meson) + bundled nanopb subproject ------------------------------
KEY="criterion-static $V_CR nanopb $V_PB debugbreak $V_DBG htslib $V_HTS boxfort $V_BXF nanomsg $V_NN libffi $V_FFI r$RECIPE_REV"
if stamp_ok criterion "$KEY"; then
    log "criterion $V_CR: up to date"
else
    log "criterion $V_CR: building"
    s="$(unpack criterion)"
    pb="$(unpack nanopb)"
    rm -rf "$s/subprojects/nanopb"
    mv "$pb" "$s/subprojects/nanopb"
    # submodule stand-ins (see SRC_PKGS above)
    tar -xf "$(orig_of debugbreak)" -C "$s/dependencies/debugbreak" --strip-components=1 \
        --wildcards '*/debugbreak.h'
    tar -xf "$(orig_of htslib)" -C "$s/dependencies/klib" --strip-components=2 --wildcards \
        '*/htslib/khash.h' '*/htslib/kstring.h' '*/htslib/kroundup.h' '*/htslib/hts_defs.h'
    cat >"$s/dependencies/klib/kvec.h" <<'EOF'
/* Minimal stand-in for klib's kvec.h: the subset Criterion 2.4 uses.
 * Generated by aiopoll's tools/build-mingw-criterion.sh. */
#ifndef AC_KVEC_H
#define AC_KVEC_H
#include <stdlib.h>
#define kvec_t(type) struct { size_t n, m; type *a; }
#define kv_init(v) ((v).n = (v).m = 0, (v).a = 0)
#define kv_destroy(v) free((v).a)
#define kv_A(v, i) ((v).a[(i)])
#define kv_size(v) ((v).n)
#define kv_max(v) ((v).m)
#define kv_pop(v) ((v).a[--(v).n])
#define kv_push(type, v, x) do { \
        if ((v).n == (v).m) { \
            (v).m = (v).m ? (v).m << 1 : 2; \
            (v).a = (type *)realloc((v).a, sizeof(type) * (v).m); \
        } \
        (v).a[(v).n++] = (x); \
    } while (0)
#endif
EOF
    # -DNN_STATIC_LIB: nanomsg is a static library (its headers dllimport
    #   otherwise; nanomsg.pc does not say so).
    # BXF_DBG_*: Criterion 2.4.1 uses the "debugger fallback" macros that
    #   Debian's boxfort 0.1.2-2 adds with a patch (in its .debian.tar.xz, not
    #   always on the mirror).  Only --debug=native uses them: without the
    #   patch it simply does not fall back to a suspended sandbox.
    CR_CARGS="-DNN_STATIC_LIB"
    if ! grep -q BXF_DBG_ENABLE_FALLBACK "$PREFIX/include/boxfort.h"; then
        CR_CARGS+=" -DBXF_DBG_ENABLE_FALLBACK(d)=((void)(d)) -DBXF_DBG_GET_DEBUGGER(d)=(d)"
    fi
    meson_build "$s" "$WORK/criterion-build" \
        -Dtests=false -Dsamples=false -Ddiffs=disabled -Di18n=disabled \
        -Dtheories=enabled -Dcxx-support=enabled \
        "-Dc_args=$CR_CARGS" "-Dcpp_args=$CR_CARGS"
    # Static-only prefix.  Criterion always builds a DLL too (both_libraries);
    # drop it so that -lcriterion cannot pick libcriterion.dll.a.  Its headers
    # declare the API __declspec(dllimport) on Windows unless
    # CRITERION_BUILDING_DLL is defined, so static users must define it (it
    # only switches CR_API to dllexport, harmless in an executable).
    rm -f "$PREFIX/lib/libcriterion.dll.a" "$PREFIX"/bin/libcriterion*.dll
    rmdir "$PREFIX/bin" 2>/dev/null || true
    # Make the plain (non --static) pkg-config answer a complete static link
    # line: CMake's pkg_check_modules(... IMPORTED_TARGET) uses that one.
    pc="$PREFIX/lib/pkgconfig/criterion.pc"
    sed -i -e 's|^Requires.private:|Requires:|' \
        -e 's|^Cflags: .*|Cflags: -I${includedir} -DCRITERION_BUILDING_DLL=1|' "$pc"
    privlibs="$(sed -n 's|^Libs.private: *||p' "$pc")"
    sed -i -e '/^Libs.private:/d' -e "s|^Libs: .*|Libs: -L\${libdir} -lcriterion $privlibs|" "$pc"
    stamp_set criterion "$KEY"
fi

# --------------------------------------------------------------------------
# 4. Wine prefix (non-interactive) and verification
# --------------------------------------------------------------------------
export WINEPREFIX="${WINEPREFIX:-$BASE/wineprefix}"
export WINEDEBUG=-all
# No Mono/Gecko install prompts, no menu entries.
export WINEDLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
unset DISPLAY WAYLAND_DISPLAY || true

wine_setup() {
    [ -f "$WINEPREFIX/.aiopoll-configured" ] && return 0
    log "creating Wine prefix $WINEPREFIX (wineboot -u, once)"
    mkdir -p "$WINEPREFIX"
    timeout 300 "$WINE_BIN" wineboot -u </dev/null >"$WORK/wineboot.log" 2>&1 ||
        { tail -20 "$WORK/wineboot.log" || true; die "wineboot failed or timed out (see $WORK/wineboot.log)"; }
    # A crashing test must not start winedbg (backtrace spam, or a dialog
    # when a display exists): no just-in-time debugger, no crash dialog.
    "$WINE_BIN" reg add 'HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug' \
        /v Debugger /t REG_SZ /d '' /f </dev/null >/dev/null 2>&1
    "$WINE_BIN" reg add 'HKCU\Software\Wine\WineDbg' \
        /v ShowCrashDialog /t REG_DWORD /d 0 /f </dev/null >/dev/null 2>&1
    touch "$WINEPREFIX/.aiopoll-configured"
}

VERIFY_FAILED=0
check() { # check NAME EXPECTED_SYNTHESIS EXPECT_RC(0|nonzero) EXE [ARGS...]
    local name="$1" want="$2" want_rc="$3"; shift 3
    local out rc t=$SECONDS
    set +e
    # Through the emulator of the toolchain file, which boots the prefix's
    # session on /dev/null: booted by this command, the session's system
    # processes would hold the pipe of "$(...)" open until the server exits.
    out="$(timeout 120 /bin/sh "$ROOT/cmake/toolchains/wine-run.sh" "$WINE_BIN" "$@" </dev/null 2>&1)"
    rc=$?
    set -e
    local got; got="$(printf '%s\n' "$out" | tr -d '\r' | grep -o 'Synthesis: .*' | sed 's/[[:space:]]*$//' || true)"
    local ok=1
    [ "$got" = "Synthesis: $want" ] || ok=0
    if [ "$want_rc" = 0 ]; then [ "$rc" = 0 ] || ok=0; else [ "$rc" != 0 ] || ok=0; fi
    [ "$rc" = 124 ] && ok=0   # killed by our outer timeout: Criterion's did not work
    if [ "$ok" = 1 ]; then
        printf 'PASS  %-34s rc=%-3s %2ds  %s\n' "$name" "$rc" "$((SECONDS - t))" "$got"
    else
        printf 'FAIL  %-34s rc=%-3s %2ds  got: %s\n      want: Synthesis: %s\n' \
            "$name" "$rc" "$((SECONDS - t))" "${got:-<none>}" "$want"
        printf '%s\n' "$out" | sed 's/^/      | /' | tail -25
        VERIFY_FAILED=1
    fi
    LAST_OUT="$out"
}

verify() {
    wine_setup
    log "verifying with a throw-away Criterion test under Wine ($WINE_BIN)"
    # Deliberately a short path (Z:\tmp\cr.XXXXXX\p.exe): it exercises the
    # boxfort command-line fix above.
    local t; t="$(mktemp -d /tmp/cr.XXXXXX)"
    # shellcheck disable=SC2064
    trap "rm -rf '$t'" EXIT
    cat >"$t/p.c" <<'CEOF'
#include <criterion/criterion.h>
#include <windows.h>
static int counter; /* each test runs in its own process: always 0 at start */
Test(basic, arith) { counter++; cr_assert_eq(1 + 1, 2); cr_assert_eq(counter, 1); }
Test(basic, isolated) { counter++; cr_assert_eq(counter, 1, "state leaked between tests"); }
Test(basic, quick_with_timeout, .timeout = 2) { Sleep(100); cr_assert_eq(2 * 2, 4); }
CEOF
    cat >"$t/f.c" <<'CEOF'
#include <criterion/criterion.h>
Test(neg, ok) { cr_assert_eq(2, 2); }
Test(neg, fails) { cr_assert_eq(1, 2, "this failure is expected"); }
Test(neg, crashes) { volatile int *volatile p = 0; *p = 1; }
CEOF
    cat >"$t/h.c" <<'CEOF'
#include <criterion/criterion.h>
#include <windows.h>
Test(hang, forever, .timeout = 2) { for (;;) Sleep(50); }
Test(hang, ok) { cr_assert(1); }
CEOF
    # The boxfort timer-lifetime fix: a test's timer must not kill the test
    # that runs after it (-j1: one after the other, in name order). Without
    # the fix b is killed about 1 s in, 6 times out of 6 (four stale timers,
    # one of which finds its memory reused by b's instance).
    cat >"$t/s.c" <<'CEOF'
#include <criterion/criterion.h>
#include <windows.h>
Test(stale, a1_short_timeout, .timeout = 1) { cr_assert(1); }
Test(stale, a2_short_timeout, .timeout = 1) { cr_assert(1); }
Test(stale, a3_short_timeout, .timeout = 1) { cr_assert(1); }
Test(stale, a4_short_timeout, .timeout = 1) { cr_assert(1); }
Test(stale, b_outlives_them, .timeout = 20) { Sleep(2500); cr_assert(1); }
CEOF
    local cflags libs x
    cflags="$(pkg-config --cflags criterion)"
    libs="$(pkg-config --libs criterion)"
    for x in p f h s; do
        # shellcheck disable=SC2086
        "$TRIPLE-gcc" -O1 -o "$t/$x.exe" "$t/$x.c" $cflags -static $libs ||
            die "could not build $x.c against $PREFIX"
    done
    (
        cd "$t"
        check "passing tests" "Tested: 3 | Passing: 3 | Failing: 0 | Crashing: 0" 0 ./p.exe
        check "passing tests, -j1" "Tested: 3 | Passing: 3 | Failing: 0 | Crashing: 0" 0 ./p.exe -j1
        check "failing + crashing test" "Tested: 3 | Passing: 1 | Failing: 2 | Crashing: 1" nonzero ./f.exe
        check "hanging test (.timeout = 2)" "Tested: 2 | Passing: 1 | Failing: 1 | Crashing: 0" nonzero ./h.exe
        printf '%s\n' "$LAST_OUT" | grep -q 'hang::forever: Timed out' ||
            { echo "FAIL  hang::forever was not reported as 'Timed out'"; VERIFY_FAILED=1; }
        check "a timeout outlives no test, -j1" "Tested: 5 | Passing: 5 | Failing: 0 | Crashing: 0" 0 ./s.exe -j1
        exit "$VERIFY_FAILED"
    ) || VERIFY_FAILED=1
    [ "$VERIFY_FAILED" = 0 ] || die "verification under Wine failed"
}

VKEY="$(cat "$STAMPS/criterion") $(cat "$STAMPS/boxfort") wine $("$WINE_BIN" --version 2>/dev/null || true) prefix $WINEPREFIX"
if [ "${SKIP_VERIFY:-0}" = 1 ]; then
    log "SKIP_VERIFY=1: not running the Wine checks"
elif [ "${FORCE_VERIFY:-0}" != 1 ] && stamp_ok verified "$VKEY" &&
    [ -f "$WINEPREFIX/.aiopoll-configured" ]; then
    log "Wine checks passed before for this build (FORCE_VERIFY=1 to re-run)"
else
    verify
    stamp_set verified "$VKEY"
fi

# --------------------------------------------------------------------------
# 5. How to use it
# --------------------------------------------------------------------------
log "done"
cat <<EOF

MinGW-w64 Criterion prefix: $PREFIX   (static libraries, no DLLs)

  pkg-config:  PKG_CONFIG_LIBDIR=$PREFIX/lib/pkgconfig pkg-config --cflags --libs criterion
    cflags: $(pkg-config --cflags criterion)
    libs:   $(pkg-config --libs criterion)
    link test executables with -static (no MinGW runtime DLLs needed under Wine).

  CMake:
    cmake -S . -B build/mingw -G Ninja \\
      -DCMAKE_TOOLCHAIN_FILE=$TOOLCHAIN \\
      -DAIOPOLL_MINGW_DEPS=$PREFIX \\
      -DAIOPOLL_WINEPREFIX=$WINEPREFIX
    # in CMakeLists.txt:
    #   find_package(PkgConfig REQUIRED)
    #   pkg_check_modules(CRITERION REQUIRED IMPORTED_TARGET criterion)
    #   target_link_libraries(test_x PRIVATE PkgConfig::CRITERION)
    #   target_link_options(test_x PRIVATE -static)   # when cross-compiling to Windows
    # ctest then runs the .exe files under: $WINE_BIN (through cmake/toolchains/wine-run.sh)
    # (WINEDEBUG=-all, WINEPREFIX=$WINEPREFIX).
EOF
