#!/bin/sh
# run.sh BUILD_DIR SOURCE_DIR - the install-prefix test: install the built
# project into a temporary prefix, then build examples/embed_host against it
# with pkg-config (shared and static) and with find_package(ituna), and run each
# build (embedded test broker unless ITUNA_KAFKA_BOOTSTRAP is set).
set -eu
build=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/ituna-embed.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

echo "== install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; exit 1; }
libdir=$(dirname "$(find "$prefix" -name 'libituna.so' | head -n1)")
pcdir=$libdir/pkgconfig
test -f "$pcdir/ituna.pc" || { echo "no ituna.pc under $prefix"; exit 1; }
test -f "$libdir/cmake/ituna/ituna-config.cmake" || { echo "no CMake package under $prefix"; exit 1; }

export ITUNA_TRACES_FILE="$work/traces.jsonl"
run_example() {
    echo "== run $1"
    LD_LIBRARY_PATH=$libdir "$1"
}

echo "== pkg-config, shared"
mkdir -p "$work/pc"
PKG_CONFIG_PATH=$pcdir make -s -C "$src/examples" OUT="$work/pc"
run_example "$work/pc/embed_host"
# it must have linked the installed libituna, not some other copy
LD_LIBRARY_PATH=$libdir ldd "$work/pc/embed_host" | grep -q "$libdir/libituna.so" ||
    { echo "embed_host does not use $libdir/libituna.so"; exit 1; }

echo "== pkg-config, static libituna.a"
# Requires.private must name the core's dependencies for a static link
static_libs=$(PKG_CONFIG_PATH=$pcdir pkg-config --static --libs ituna 2>/dev/null || true)
for dep in -lrdkafka -lcurl -lcjson -lz; do
    echo " $static_libs " | grep -q -- " $dep " || { echo "pkg-config --static --libs ituna lacks $dep"; exit 1; }
done
# Debian ships no static lz4/zstd/sasl for librdkafka, so link libituna.a
# statically and its dependencies (Requires.private, non-static) dynamically
mkdir -p "$work/pc-static"
PKG_CONFIG_PATH=$pcdir make -s -C "$src/examples" OUT="$work/pc-static" \
    LDLIBS="-L$libdir -Wl,-Bstatic -lituna -Wl,-Bdynamic $(pkg-config --libs rdkafka libcurl libcjson zlib) -pthread -lm"
if ldd "$work/pc-static/embed_host" | grep -q libituna; then echo "static build still links libituna.so"; exit 1; fi
run_example "$work/pc-static/embed_host"

for variant in shared static; do
    echo "== find_package(ituna), ituna::ituna$( [ $variant = static ] && echo _static)"
    opt=OFF; [ $variant = static ] && opt=ON
    cmake -S "$src/examples" -B "$work/cm-$variant" -DCMAKE_PREFIX_PATH="$prefix" -DITUNA_EXAMPLE_STATIC=$opt \
        >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
    cmake --build "$work/cm-$variant" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
    if [ $variant = static ] && ldd "$work/cm-$variant/embed_host" | grep -q libituna; then
        echo "ituna::ituna_static build links libituna.so"; exit 1
    fi
    run_example "$work/cm-$variant/embed_host"
done

echo "== installed Lua module and ituna-lua"
cmod=$(find "$prefix" -name ituna.so | head -n1)
test -n "$cmod" || { echo "no Lua module ituna.so under $prefix"; exit 1; }
LUA_CPATH="$(dirname "$cmod")/?.so" lua5.4 -e 'local i = require "ituna"; assert(i.version, "no version"); print("lua5.4 loads the installed module " .. i.version)'
echo 'print("ituna-lua runs as " .. require("ituna").tracer():service_name())' >"$work/hello.lua"
out=$(env -u LD_LIBRARY_PATH "$prefix/bin/ituna-lua" --service installed-host "$work/hello.lua")
echo "$out"
test "$out" = "ituna-lua runs as installed-host" || { echo "installed ituna-lua misbehaves"; exit 1; }

spans=$(grep -o '"name":"process embed-example-' "$ITUNA_TRACES_FILE" | wc -l)
test "$spans" -ge 4 || { echo "expected 4 CONSUMER spans in the traces file, found $spans"; exit 1; }
echo "ok: installed package builds and runs with pkg-config and find_package"
