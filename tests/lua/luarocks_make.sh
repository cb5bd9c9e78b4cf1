#!/bin/sh
# luarocks_make.sh SOURCE_DIR LUA - the rockspec builds from a checkout: copy the
# tree, `luarocks make ituna-0.1.0-1.rockspec --tree <tmp>` (make builds the
# current directory and ignores source.url/tag, which exist only once released),
# check that the tree holds the Lua module alone (ITUNA_INSTALL_CORE=OFF: no
# headers, no libituna, no ituna-lua), then load that module with lua5.4 and
# export one span. Skipped (exit 77, reason printed) without luarocks; fails
# under CI=true. KEEP_WORK=1 keeps the temporary directory (its make.log).
set -eu
src=$1
lua=${2:-lua5.4}
if ! command -v luarocks >/dev/null 2>&1; then
    echo "luarocks not installed (tools/install-deps.sh --test installs Debian's luarocks)"
    [ "${CI:-}" = true ] && { echo "FAIL: CI=true requires this test"; exit 1; }
    exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/ituna-rock.XXXXXX")
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
# the checkout without build outputs, VCS data or node modules
(cd "$src" && tar --exclude='./build*' --exclude=./.git --exclude='*/node_modules' --exclude=./artifacts \
    --exclude='*.so' --exclude='*.egg-info' -cf - .) | tar -C "$work/src" -xf -
rockspec=$(cd "$work/src" && ls ituna-*.rockspec)
[ "$(echo "$rockspec" | wc -l)" = 1 ] || { echo "expected one rockspec, got: $rockspec"; exit 1; }

echo "== luarocks make $rockspec --tree $work/tree"
if ! (cd "$work/src" && timeout 600 nice luarocks --lua-version 5.4 --tree "$work/tree" make "$rockspec") \
        >"$work/make.log" 2>&1; then
    tail -n 60 "$work/make.log"; echo "FAIL: luarocks make"; exit 1
fi
mod=$work/tree/lib/lua/5.4/ituna.so
[ -f "$mod" ] || { echo "FAIL: no $mod"; find "$work/tree" -type f; exit 1; }
extra=$(find "$work/tree" \( -name '*.h' -o -name 'libituna*' -o -name ituna-lua -o -name ituna.pc \
    -o -name 'ituna-config*.cmake' \) -print)
[ -z "$extra" ] || { echo "FAIL: ITUNA_INSTALL_CORE=OFF still installed:"; echo "$extra"; exit 1; }
luarocks --lua-version 5.4 --tree "$work/tree" list 2>/dev/null | grep -q '^ituna$' ||
    { echo "FAIL: the rock is not in the tree's manifest"; exit 1; }

echo "== load it with $lua"
traces=$work/spans.jsonl
LUA_CPATH="$work/tree/lib/lua/5.4/?.so" LUA_PATH="" TRACES="$traces" MOD="$mod" timeout 60 "$lua" -e '
  local ituna = require "ituna"
  assert(package.searchpath("ituna", package.cpath) == os.getenv("MOD"), "loaded another ituna.so")
  local t = ituna.init { service_name = "rock-test", ["exporter.type"] = "file", ["exporter.file"] = os.getenv("TRACES") }
  t:span("from-the-rock", { n = 1 }, function() end)
  assert(ituna.shutdown(5), "shutdown")
  print("module loaded from the rock tree: " .. os.getenv("MOD"))'
grep -q '"from-the-rock"' "$traces" || { echo "FAIL: the span was not exported"; exit 1; }
echo "ok"
