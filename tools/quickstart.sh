#!/usr/bin/env bash
# tools/quickstart.sh - the README's first command: set up a fresh Debian 12
# machine (Debian packages, the C library and Lua module installed under
# /usr/local, the Python package with pip) and run the ITuna restaurant on the
# embedded default: librdkafka's built-in Kafka-protocol TEST cluster on
# 127.0.0.1 and OTLP JSON-lines trace files, for a few dozen orders.
# Arguments are passed to ituna-restaurant (default: --orders 30).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

bash tools/install-deps.sh
# Debian's Python refuses pip installs outside a venv (PEP 668); this script sets the
# machine up on purpose, so it says so. pyenv's Python has no such marker.
[ -f "$($PY -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null)/EXTERNALLY-MANAGED" ] &&
    export PIP_BREAK_SYSTEM_PACKAGES=1
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
$SUDO cmake --install build >/dev/null          # libituna, headers, ituna.pc, ituna-lua, the Lua module
$SUDO ldconfig
$PY -m pip install -q --disable-pip-version-check .
[ $# -gt 0 ] || set -- --orders 30
exec "$PY" -m ituna.restaurant "$@"
