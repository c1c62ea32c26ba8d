#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, run the iothread demo
# once per backend this machine has.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target iothread-demo
# CMake writes the backends compiled for this platform, one per line.
while read -r backend; do
    echo
    echo "### AIOPOLL_BACKEND=$backend"
    AIOPOLL_BACKEND="$backend" build/examples/iothread-demo
done <build/aiopoll-backends.txt
