#!/usr/bin/env bash
# Installs the Debian packages aiopoll's build, tests and benchmark need.
# Idempotent and quiet when everything is present. Needs root (or sudo).
#   tools/deps.sh            build + native tests
#   tools/deps.sh --all      also MinGW-w64, Wine, musl, g++ and the benchmark's peers
set -euo pipefail

pkgs=(cmake ninja-build gcc clang pkg-config libcriterion-dev
      libglib2.0-dev libevent-dev libuv1-dev) # the host loops of integrations/
if [ "${1:-}" = "--all" ]; then
    pkgs+=(mingw-w64 wine64 wine gnuplot-nox strace musl-tools g++ spin)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
