#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, run the iothread demo
# and the host-loop examples once per backend this machine has.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target iothread-demo
# The host-loop examples exist when their adapter was built (docs/embedding.md).
demos=(iothread-demo)
for d in glib-main-loop libevent-server libuv-checksums; do
    cmake --build build --target "$d" >/dev/null 2>&1 && demos+=("$d")
done
# CMake writes the backends compiled for this platform, one per line.
while read -r backend; do
    echo
    echo "### AIOPOLL_BACKEND=$backend"
    for d in "${demos[@]}"; do
        echo "--- $d"
        AIOPOLL_BACKEND="$backend" "build/examples/$d"
    done
done <build/aiopoll-backends.txt
