#!/bin/bash
# Usage: tools/check-wine-session.sh WINEPREFIX
#
# Run right after the wine stage's ctest: fails when a system process of the
# prefix's Wine session (services.exe, winedevice.exe, explorer.exe, ...)
# has a pipe or a socket as its standard output or error. Such a process
# holds the output pipe of the test whose Wine process booted the session,
# and ctest then waits for that pipe until the test "times out" long after
# it exited (see cmake/toolchains/wine-run.sh, which boots the session on
# /dev/null so that this cannot happen). The stage kills the prefix's
# server before its ctest, so the session checked here is the one the suite
# booted.
#
# Prints "N passed, M failed" (N, M: 1 or 0) for tools/run-tests.sh.
set -u
prefix=$(cd "$1" && pwd)
found=0
bad=0
for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    case $cmd in
    [Cc]:\\windows\\*) ;;
    *) continue ;;
    esac
    tr '\0' '\n' <"$d/environ" 2>/dev/null | grep -qxF "WINEPREFIX=$prefix" || continue
    found=$((found + 1))
    for fd in 1 2; do
        target=$(readlink "$d/fd/$fd" 2>/dev/null) || continue
        case $target in
        pipe:* | socket:*)
            echo "check-wine-session: ${d#/proc/} ($cmd) has $target as fd $fd" >&2
            bad=$((bad + 1))
            ;;
        esac
    done
done
if [ "$found" = 0 ]; then
    # The session ended (its server outlives the last process by 60 s):
    # nothing to check, which is a failure of the check, not a pass.
    echo "check-wine-session: no system process of $prefix is running" >&2
    echo "0 passed, 1 failed"
elif [ "$bad" != 0 ]; then
    echo "0 passed, 1 failed"
else
    echo "check-wine-session: $found system processes of the session, none holds a pipe"
    echo "1 passed, 0 failed"
fi
