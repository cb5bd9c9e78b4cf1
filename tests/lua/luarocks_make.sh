#!/bin/sh
# luarocks_make.sh SOURCE_DIR LUA - the rock installs from the source tree, both ways
# the rockspec's header names:
#   1. a clone (a copy of the tree, made a git repository): `luarocks make` there,
#      which builds the current directory;
#   2. `luarocks install <the scm rockspec>`, with source.url pointed at that clone
#      (file://, as the published rockspec points at the project's repository): luarocks
#      clones branch main, checks external_dependencies and builds;
#   3. a missing C library is refused before building, naming it (RDKAFKA_DIR=/nonexistent).
# Each tree must hold the Lua module alone (ITUNA_INSTALL_CORE=OFF: no headers, no
# libituna, no ituna-lua), and lua5.4 loads it from there and exports one span.
# Skipped (exit 77, reason printed) without luarocks or git; fails under CI=true.
# KEEP_WORK=1 keeps the temporary directory (its *.log).
set -eu
src=$1
lua=${2:-lua5.4}
for tool in luarocks git; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "$tool not installed (tools/install-deps.sh --test installs Debian's luarocks and git)"
        [ "${CI:-}" = true ] && { echo "FAIL: CI=true requires this test"; exit 1; }
        exit 77
    fi
done
work=$(mktemp -d "${TMPDIR:-/tmp}/ituna-rock.XXXXXX")
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
# the checkout without build outputs, VCS data or node modules, committed to a fresh repository
(cd "$src" && tar --exclude='./build*' --exclude=./.git --exclude='*/node_modules' --exclude=./artifacts \
    --exclude=./dist --exclude='*.so' --exclude='*.egg-info' -cf - .) | tar -C "$work/src" -xf -
(cd "$work/src" && git init -q -b main && git -c user.name=t -c user.email=t@t add -A &&
    git -c user.name=t -c user.email=t@t commit -qm snapshot) || { echo "FAIL: git"; exit 1; }
rockspec=$(cd "$work/src" && ls ituna-*.rockspec)
[ "$rockspec" = ituna-scm-1.rockspec ] || { echo "expected one rockspec, ituna-scm-1.rockspec, got: $rockspec"; exit 1; }

# check_tree TREE: the module alone is installed, in the tree's manifest, and loads
check_tree() {
    tree=$1
    mod=$tree/lib/lua/5.4/ituna.so
    [ -f "$mod" ] || { echo "FAIL: no $mod"; find "$tree" -type f; exit 1; }
    extra=$(find "$tree" \( -name '*.h' -o -name 'libituna*' -o -name ituna-lua -o -name ituna.pc \
        -o -name 'ituna-config*.cmake' \) -print)
    [ -z "$extra" ] || { echo "FAIL: ITUNA_INSTALL_CORE=OFF still installed:"; echo "$extra"; exit 1; }
    luarocks --lua-version 5.4 --tree "$tree" list 2>/dev/null | grep -q '^ituna$' ||
        { echo "FAIL: the rock is not in the tree's manifest"; exit 1; }
    traces=$tree.spans.jsonl
    LUA_CPATH="$tree/lib/lua/5.4/?.so" LUA_PATH="" TRACES="$traces" MOD="$mod" timeout 60 "$lua" -e '
      local ituna = require "ituna"
      assert(package.searchpath("ituna", package.cpath) == os.getenv("MOD"), "loaded another ituna.so")
      local t = ituna.init { service_name = "rock-test", ["exporter.type"] = "file", ["exporter.file"] = os.getenv("TRACES") }
      t:span("from-the-rock", { n = 1 }, function() end)
      assert(ituna.shutdown(5), "shutdown")
      print("module loaded from the rock tree: " .. os.getenv("MOD"))'
    grep -q '"from-the-rock"' "$traces" || { echo "FAIL: the span was not exported"; exit 1; }
}

echo "== 1. luarocks make (in a clone) --tree $work/tree-make"
if ! (cd "$work/src" && timeout 600 nice luarocks --lua-version 5.4 --tree "$work/tree-make" make) \
        >"$work/make.log" 2>&1; then
    tail -n 60 "$work/make.log"; echo "FAIL: luarocks make"; exit 1
fi
check_tree "$work/tree-make"

echo "== 2. luarocks install $rockspec (source: git+file://$work/src, branch main)"
sed "s|url = \"git+https://[^\"]*\"|url = \"git+file://$work/src\"|" "$work/src/$rockspec" >"$work/$rockspec"
grep -q "git+file://$work/src" "$work/$rockspec" || { echo "FAIL: could not point source.url at the clone"; exit 1; }
if ! (cd "$work" && timeout 600 nice luarocks --lua-version 5.4 --tree "$work/tree-install" install "$rockspec") \
        >"$work/install.log" 2>&1; then
    tail -n 60 "$work/install.log"; echo "FAIL: luarocks install"; exit 1
fi
check_tree "$work/tree-install"

echo "== 3. a missing C library stops luarocks before the build"
if (cd "$work/src" && timeout 120 luarocks --lua-version 5.4 --tree "$work/tree-missing" make RDKAFKA_DIR=/nonexistent) \
        >"$work/missing.log" 2>&1; then
    echo "FAIL: luarocks make succeeded without librdkafka"; exit 1
fi
grep -q "RDKAFKA" "$work/missing.log" && grep -q "librdkafka/rdkafka.h" "$work/missing.log" ||
    { cat "$work/missing.log"; echo "FAIL: the error does not name RDKAFKA and its header"; exit 1; }
! grep -q "cmake" "$work/missing.log" || { cat "$work/missing.log"; echo "FAIL: the build started"; exit 1; }
sed -n 's/^/  luarocks: /p' "$work/missing.log" | grep -i rdkafka | head -n 2
echo "ok"
