#!/bin/sh
# The CMAKE_CROSSCOMPILING_EMULATOR of the MinGW toolchain file: runs one
# cross-built executable under Wine.
#
#   wine-run.sh WINE PROGRAM.exe [ARGS...]
#
# (WINEPREFIX, WINEDEBUG and WINEDLLOVERRIDES come from the environment.)
# The server is the one installed beside WINE (Debian: /usr/lib/wine/wine64
# and wineserver64), else wineserver on PATH: one lookup, here, for the
# toolchain file and tools/build-mingw-criterion.sh.
#
# Why not run WINE directly: the first Wine process of a prefix's session
# boots the session's system processes (services.exe, winedevice.exe,
# plugplay.exe, svchost.exe, rpcss.exe, explorer.exe), and they inherit its
# standard error. Under ctest that is the test's output pipe, so the pipe
# stays open for as long as the session lives, and ctest, which waits for
# the end of the output and not only for the process, reports "Timeout"
# for a test that printed its "Synthesis" and exited seconds before. With
# ctest -j the session lives until the last test ends, so whichever test
# happened to start it fails (CI, stop 16: context/win32 after 120 s).
#
# So the session is started here, with every standard stream on /dev/null,
# before the program runs: the system processes then hold /dev/null. The
# server's persistence is raised from Wine's default 3 s to 60 s so that
# the session outlives the gaps between tests instead of being booted again
# (each boot costs about a second). When a server already runs, "-p60"
# fails at once and that server is used; "cmd /c exit" then only connects
# to the booted session (0.5 s).
set -u
wine=$1
shift
dir=$(dirname "$wine")
if [ -x "$dir/wineserver64" ]; then
    server=$dir/wineserver64
elif [ -x "$dir/wineserver" ]; then
    server=$dir/wineserver
else
    server=wineserver
fi
"$server" -p60 </dev/null >/dev/null 2>&1 || :
"$wine" cmd /c exit </dev/null >/dev/null 2>&1 || :
exec "$wine" "$@"
