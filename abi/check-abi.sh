#!/usr/bin/env bash
# The installed ABI of libaiopoll.so against the baseline kept in this
# directory (docs/versioning.md has the rules).
#
#   abi/check-abi.sh            build, install, compare; exit 1 on an
#                               incompatible change under the same SONAME
#   abi/check-abi.sh --update   (re)write the baseline of the current SONAME
#
# The baseline abi/libaiopoll.so.<major>.abi is abidw's description of what
# the public headers expose (--headers-dir: types private to src/ are not
# part of it), made from a RelWithDebInfo build with gcc. abidiff's exit
# status is a bit mask: 1 error, 2 usage, 4 some ABI change, 8 a change it
# is sure is incompatible. Errors fail, and so does every removed or changed
# function, variable or public type; an addition passes and is printed, and
# the baseline is refreshed when the release that adds it is made.
# A SONAME whose major has no baseline yet means the major was bumped: the
# old baseline no longer binds, the check passes, and says to record one.
# Ends with "N passed, N failed" (one check).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
update=0
[ "${1:-}" = "--update" ] && update=1

dir=build/test-abi
prefix=$dir/prefix
rm -rf "$prefix"
CC=${ABI_CC:-gcc} cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DAIOPOLL_BUILD_TESTS=OFF -DAIOPOLL_BUILD_EXAMPLES=OFF -DAIOPOLL_BUILD_STATIC=OFF \
    >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; echo "0 passed, 1 failed"; exit 1; }
cmake --build "$dir" >"$dir.build.log" 2>&1 || { tail -n 40 "$dir.build.log"; echo "0 passed, 1 failed"; exit 1; }
cmake --install "$dir" --prefix "$prefix" >/dev/null

lib=$(find "$prefix" -name 'libaiopoll.so.*' -type f | head -n1)
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ -n "$soname" ] || { echo "abi: $lib has no SONAME"; echo "0 passed, 1 failed"; exit 1; }
baseline=abi/$soname.abi
current=$dir/$soname.abi
abidw --headers-dir "$prefix/include/aiopoll" --drop-private-types --no-corpus-path \
    --no-comp-dir-path --short-locs --type-id-style hash --out-file "$current" "$lib"

if [ "$update" = 1 ]; then
    cp "$current" "$baseline"
    echo "abi: wrote $baseline"
    exit 0
fi

if [ ! -f "$baseline" ]; then
    older=$(ls abi/libaiopoll.so.*.abi 2>/dev/null | tr '\n' ' ')
    if [ -n "$older" ]; then
        echo "abi: SONAME $soname has no baseline, the major was bumped (baselines: $older);"
        echo "abi: incompatible changes are allowed; record the new one with abi/check-abi.sh --update"
        echo "1 passed, 0 failed"
        exit 0
    fi
    echo "abi: no baseline at all (abi/libaiopoll.so.<major>.abi): run abi/check-abi.sh --update"
    echo "0 passed, 1 failed"
    exit 1
fi

set +e
abidiff --headers-dir1 "$prefix/include/aiopoll" --headers-dir2 "$prefix/include/aiopoll" \
    "$baseline" "$current" >"$dir.abidiff.txt" 2>&1
rc=$?
set -e
# abidiff sets bit 8 only for what it is sure breaks (a removed symbol); a
# changed parameter or return type of an existing function is bit 4 with a
# "Changed" count, and it breaks callers all the same. So anything removed or
# changed counts as incompatible; only additions pass.
broken=$({ grep -Eo '[0-9]+ (Removed|Changed)' "$dir.abidiff.txt" || true; } | awk '{s += $1} END {print s + 0}')
if [ "$broken" -gt 0 ]; then
    rc=$((rc | 8))
fi
if [ $((rc & 11)) -ne 0 ]; then
    cat "$dir.abidiff.txt"
    if [ $((rc & 8)) -ne 0 ]; then
        echo "abi: INCOMPATIBLE change of $soname against $baseline (abidiff exit $rc)."
        echo "abi: keep the ABI, or bump AIOPOLL_VERSION_MAJOR (include/aiopoll/version.h),"
        echo "abi: which changes the SONAME (docs/versioning.md)."
    else
        echo "abi: abidiff failed (exit $rc)"
    fi
    echo "0 passed, 1 failed"
    exit 1
fi
if [ $((rc & 4)) -ne 0 ]; then
    cat "$dir.abidiff.txt"
    echo "abi: compatible additions to $soname (a MINOR bump; abi/check-abi.sh --update"
    echo "abi: records them in the baseline with the release)"
else
    echo "abi: $soname matches $baseline"
fi
echo "1 passed, 0 failed"
