#!/usr/bin/env bash
# tools/jaeger.sh - build, start, stop and probe a local Jaeger v2 (OTLP receiver
# with in-memory storage and a query API), bound to 127.0.0.1 only.
#
#   tools/jaeger.sh build    build the binary once from the Go module proxy
#                            (cached in ~/.cache/ituna/jaeger-v1.76.0/)
#   tools/jaeger.sh start    build if needed, start in the background, wait until
#                            ready (query API answers, OTLP/HTTP accepts), write a pid file
#   tools/jaeger.sh wait     wait until a started Jaeger is ready
#   tools/jaeger.sh status   say whether it runs (exit 0) or not (exit 1)
#   tools/jaeger.sh stop     stop it by its pid
#   tools/jaeger.sh env      print ITUNA_TEST_JAEGER_OTLP / _QUERY lines for the tests
#
# Ports (environment): ITUNA_JAEGER_OTLP_PORT (4318), ITUNA_JAEGER_OTLP_GRPC_PORT (4317),
# ITUNA_JAEGER_QUERY_PORT (16686), ITUNA_JAEGER_QUERY_GRPC_PORT (16685).
# tools/jaeger/config.yaml reads the same variables, so one run can move every port.
# The Go module carries no UI assets: read traces through /api/traces/<id> or
# /api/v3/traces/<id> (OTLP JSON).
set -euo pipefail

JAEGER_VERSION=v1.76.0
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOL_DIR="$HERE/jaeger"
CONFIG="${ITUNA_JAEGER_CONFIG:-$TOOL_DIR/config.yaml}"
CACHE="${ITUNA_JAEGER_CACHE:-$HOME/.cache/ituna/jaeger-$JAEGER_VERSION}"
BIN="$CACHE/jaeger"

export ITUNA_JAEGER_OTLP_PORT="${ITUNA_JAEGER_OTLP_PORT:-4318}"
export ITUNA_JAEGER_OTLP_GRPC_PORT="${ITUNA_JAEGER_OTLP_GRPC_PORT:-4317}"
export ITUNA_JAEGER_QUERY_PORT="${ITUNA_JAEGER_QUERY_PORT:-16686}"
export ITUNA_JAEGER_QUERY_GRPC_PORT="${ITUNA_JAEGER_QUERY_GRPC_PORT:-16685}"

# One state directory per query port, so test instances on other ports do not
# clash with a developer's default one.
RUN_DIR="${ITUNA_JAEGER_RUN_DIR:-$HOME/.cache/ituna/jaeger-run}"
PID_FILE="$RUN_DIR/jaeger-$ITUNA_JAEGER_QUERY_PORT.pid"
LOG_FILE="$RUN_DIR/jaeger-$ITUNA_JAEGER_QUERY_PORT.log"
START_TIMEOUT="${ITUNA_JAEGER_START_TIMEOUT:-60}"

QUERY_URL="http://127.0.0.1:$ITUNA_JAEGER_QUERY_PORT"
OTLP_URL="http://127.0.0.1:$ITUNA_JAEGER_OTLP_PORT"

say() { printf 'jaeger.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

GO_MIN=1.24
GO_FETCH=1.24.6   # tools/jaeger/go.mod's go line

go_ok() { # $1: a go binary; true when it runs and is >= GO_MIN
    local v; v="$("$1" env GOVERSION 2>/dev/null)" || return 1
    v="${v#go}"
    [ "$(printf '%s\n%s\n' "$GO_MIN" "${v%%[!0-9.]*}" | sort -V | head -n1)" = "$GO_MIN" ]
}

# A Go toolchain is itself a module on the Go module proxy (golang.org/toolchain):
# fetched once into the cache when the machine's Go is missing or too old (Debian
# 12's golang-go is 1.19).
fetch_go() {
    local dir="$HOME/.cache/ituna/go-$GO_FETCH" arch
    case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) die "no Go toolchain for $(uname -m)" ;; esac
    if [ ! -x "$dir/bin/go" ]; then
        local proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
        local url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_FETCH.linux-$arch.zip" tmp="$dir.tmp.$$"
        say "fetching Go $GO_FETCH from $url"
        mkdir -p "$tmp"
        curl -fsSL --retry 3 -o "$tmp/go.zip" "$url" || die "cannot fetch $url"
        python3 -m zipfile -e "$tmp/go.zip" "$tmp/x" || die "cannot unpack $tmp/go.zip"
        rm -rf "$dir" && mv "$tmp/x/golang.org/toolchain@v0.0.1-go$GO_FETCH.linux-$arch" "$dir" && rm -rf "$tmp"
        # zipfile keeps no file modes: the tools must be executable again
        chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
    fi
    printf '%s\n' "$dir/bin/go"
}

find_go() {
    local c
    for c in "${GO:-}" "$(command -v go 2>/dev/null || true)" /usr/local/go/bin/go; do
        if [ -n "$c" ] && [ -x "$c" ] && go_ok "$c"; then printf '%s\n' "$c"; return; fi
    done
    [ -n "${GO:-}" ] && die "GO=$GO is not a Go >= $GO_MIN"
    fetch_go
}

cmd_build() {
    if [ -x "$BIN" ]; then
        say "cached: $BIN"
        return 0
    fi
    local go; go="$(find_go)"
    mkdir -p "$CACHE"
    # Go's caches live under the home directory, so the 2 GB cold build happens once.
    export GOMODCACHE="${GOMODCACHE:-$HOME/go/pkg/mod}"
    export GOCACHE="${GOCACHE:-$HOME/.cache/go-build}"
    export GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false"
    export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
    say "building Jaeger $JAEGER_VERSION with $("$go" version) (cold: about 4 minutes, 2 GB of memory)"
    local t0=$SECONDS
    (cd "$TOOL_DIR" &&
        "$go" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION" &&
        "$go" build -trimpath -o "$BIN.tmp.$$" github.com/jaegertracing/jaeger/cmd/jaeger) ||
        { rm -f "$BIN.tmp.$$"; die "build failed"; }
    mv -f "$BIN.tmp.$$" "$BIN"
    say "built $BIN in $((SECONDS - t0)) s"
}

running_pid() {
    [ -f "$PID_FILE" ] || return 1
    local pid; pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be our binary.
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$(readlink -f "$BIN")" ] || return 1
    printf '%s\n' "$pid"
}

ready() {
    curl -fsS -o /dev/null --max-time 2 "$QUERY_URL/api/services" 2>/dev/null || return 1
    # An empty OTLP/JSON export request is valid and answers 200 once the receiver is up.
    curl -fsS -o /dev/null --max-time 2 -H 'Content-Type: application/json' \
        -d '{"resourceSpans":[]}' "$OTLP_URL/v1/traces" 2>/dev/null || return 1
}

cmd_wait() {
    command -v curl >/dev/null 2>&1 || die "curl is needed to probe Jaeger"
    local deadline=$((SECONDS + START_TIMEOUT))
    while ! ready; do
        if [ -f "$PID_FILE" ] && ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
            say "Jaeger exited during start-up; last lines of $LOG_FILE:"
            tail -n 20 "$LOG_FILE" >&2 || true
            return 1
        fi
        [ $SECONDS -lt $deadline ] || { say "not ready after ${START_TIMEOUT}s (log: $LOG_FILE)"; return 1; }
        sleep 0.2
    done
    say "ready: OTLP $OTLP_URL (gRPC 127.0.0.1:$ITUNA_JAEGER_OTLP_GRPC_PORT), query $QUERY_URL"
}

cmd_start() {
    local pid
    if pid="$(running_pid)"; then
        say "already running (pid $pid)"
        cmd_wait
        return
    fi
    cmd_build
    [ -f "$CONFIG" ] || die "config not found: $CONFIG"
    mkdir -p "$RUN_DIR"
    # setsid: its own session, so a Ctrl-C in the caller's terminal does not reach it
    # and stop kills exactly this process.
    setsid "$BIN" --config "$CONFIG" >"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    say "started pid $(cat "$PID_FILE"), log $LOG_FILE"
    if ! cmd_wait; then
        cmd_stop || true
        return 1
    fi
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        say "not running"
        return 0
    fi
    kill -TERM "$pid"
    local i
    for i in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    say "stopped pid $pid"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        if ready; then
            echo "running (pid $pid): OTLP $OTLP_URL, query $QUERY_URL"
        else
            echo "starting (pid $pid), not answering yet"
        fi
        return 0
    fi
    echo "not running"
    return 1
}

cmd_env() {
    echo "ITUNA_TEST_JAEGER_OTLP=$OTLP_URL"
    echo "ITUNA_TEST_JAEGER_QUERY=$QUERY_URL"
}

case "${1:-}" in
    build) cmd_build ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    wait) cmd_wait ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 build|start|stop|wait|status|env" >&2
        exit 2
        ;;
esac
