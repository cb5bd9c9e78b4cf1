#!/usr/bin/env bash
# tools/install-deps.sh - install what building and testing ituna-core needs on a
# fresh Debian 12: the C libraries, Lua, Chromium for the report's page test,
# and the Python test tools. Safe to run again (everything is skipped when there).
#   tools/install-deps.sh          runtime + build deps (for the quickstart)
#   tools/install-deps.sh --test   also the test tools (valgrind, chromium, pytest, ...)
set -euo pipefail
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

pkgs="build-essential cmake pkg-config librdkafka-dev liblua5.4-dev lua5.4 libcurl4-openssl-dev
      libcjson-dev zlib1g-dev maven default-jdk-headless"
# Debian's own Python (no pyenv or other Python first on PATH) needs its headers and pip.
PY=${PYTHON:-python3}
case "$(command -v "$PY" || true)" in /usr/bin/*|"") pkgs="$pkgs python3-dev python3-pip python3-venv" ;; esac
# openssl: the TLS export tests make their certificates with the openssl CLI
# clang + libclang-rt: the libFuzzer targets (tests/fuzz)
[ $want_test = 1 ] && pkgs="$pkgs valgrind chromium nodejs npm golang-go luarocks openssl clang-format clang libclang-rt-14-dev"
# the binary wheel (tools/build-wheel.sh): headers of what it bundles; git for the rock test
[ $want_test = 1 ] && pkgs="$pkgs libssl-dev libzstd-dev git"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Tools that the machine may already have from elsewhere (pyenv Python, Go, Node, JDK).
for alt in "nodejs:node" "npm:npm" "golang-go:go" "maven:mvn" "default-jdk-headless:java"; do
    pkg=${alt%%:*}; cmd=${alt##*:}
    if command -v "$cmd" >/dev/null 2>&1; then missing=$(echo "$missing" | tr ' ' '\n' | grep -vx "$pkg" | tr '\n' ' '); fi
done
if [ -n "$(echo $missing)" ]; then
    echo "install-deps: apt-get install$missing" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    # Debian's luarocks pulls in lua5.1, whose higher priority takes /usr/bin/lua:
    # give `lua` back to the 5.4 this project targets
    case " $missing " in *" luarocks "*)
        [ -x /usr/bin/lua5.4 ] && $SUDO update-alternatives --set lua-interpreter /usr/bin/lua5.4 >/dev/null 2>&1 || true;;
    esac
fi
# Debian's Python refuses pip installs outside a venv (PEP 668); this script sets the
# machine up on purpose, so it says so. pyenv's Python has no such marker.
[ -f "$($PY -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null)/EXTERNALLY-MANAGED" ] &&
    export PIP_BREAK_SYSTEM_PACKAGES=1
if [ $want_test = 1 ]; then
    # The report's page test drives Debian's chromium with npm's playwright-core (no browser download).
    (cd "$(dirname "$0")/../tests/browser" && [ -d node_modules ] ||
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
    $PY -m pip install -q --disable-pip-version-check -r "$(dirname "$0")/requirements-test.txt"
fi
