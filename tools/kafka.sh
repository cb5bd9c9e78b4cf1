#!/usr/bin/env bash
# tools/kafka.sh - a real Apache Kafka broker (KRaft, one combined broker+controller
# on 127.0.0.1) for the integration tests.
#   fetch    download the Kafka 4.1.1 jars from Maven Central with mvn (cached)
#   start    fetch if needed, format storage, start, wait until it answers, print bootstrap
#   resume   start it again on its existing data (after a kill or stop), wait, print bootstrap
#   stop     stop it by its pid (SIGTERM, then SIGKILL after a timeout)
#   wait     wait until it answers (ITUNA_KAFKA_WAIT seconds, default 90)
#   status   print "running <bootstrap>" or "stopped"
# Environment: ITUNA_KAFKA_PORT (19092), ITUNA_KAFKA_CONTROLLER_PORT (port+1),
# ITUNA_KAFKA_STATE (state dir, default /tmp/ituna-kafka-<port>),
# ITUNA_KAFKA_CACHE (jar cache, default ~/.cache/ituna/kafka-4.1.1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_VERSION=4.1.1
PORT="${ITUNA_KAFKA_PORT:-19092}"
CPORT="${ITUNA_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
STATE="${ITUNA_KAFKA_STATE:-${TMPDIR:-/tmp}/ituna-kafka-$PORT}"
CACHE="${ITUNA_KAFKA_CACHE:-${HOME}/.cache/ituna/kafka-$KAFKA_VERSION}"
LIBS="$CACHE/libs"
PIDFILE="$STATE/kafka.pid"
LOG="$STATE/kafka.log"
BOOTSTRAP="127.0.0.1:$PORT"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
    if [ -f "$LIBS/.complete" ]; then return 0; fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
    command -v java >/dev/null || die "java not found (apt-get install default-jre-headless)"
    mkdir -p "$LIBS"
    echo "kafka.sh: fetching Kafka $KAFKA_VERSION jars into $LIBS (first time: a few minutes)" >&2
    (cd "$HERE/kafka" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$LIBS") || die "mvn dependency:copy-dependencies failed"
    ls "$LIBS"/kafka_2.13-$KAFKA_VERSION.jar >/dev/null 2>&1 || die "kafka jar missing after fetch"
    touch "$LIBS/.complete"
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

# A metadata request that succeeds means the broker serves clients.
metadata_ok() {
    python3 - "$BOOTSTRAP" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
PY
}

wait_ready() {
    local limit="${ITUNA_KAFKA_WAIT:-90}" start=$SECONDS
    while (( SECONDS - start < limit )); do
        if [ -f "$PIDFILE" ] && ! running; then
            tail -n 30 "$LOG" >&2 || true
            die "broker exited during startup (log: $LOG)"
        fi
        if port_open; then
            if ! python3 -c 'import confluent_kafka' 2>/dev/null || metadata_ok; then
                echo "$BOOTSTRAP"
                return 0
            fi
        fi
        sleep 0.5
    done
    die "broker at $BOOTSTRAP not ready after ${limit}s (log: $LOG)"
}

start() {
    if running; then echo "$BOOTSTRAP"; return 0; fi
    if port_open; then die "port $PORT is already in use by another process"; fi
    fetch
    rm -rf "$STATE"
    mkdir -p "$STATE/data"
    sed -e "s|@PORT@|$PORT|g" -e "s|@CPORT@|$CPORT|g" -e "s|@LOGDIR@|$STATE/data|g" \
        "$HERE/kafka/server.properties" > "$STATE/server.properties"
    cat > "$STATE/log4j2.properties" <<L4J
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = warn
L4J
    local cp="$LIBS/*" uuid
    uuid="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    [ -n "$uuid" ] || die "StorageTool random-uuid failed"
    java -Xmx256m -Dlog4j2.configurationFile="$STATE/log4j2.properties" -cp "$cp" kafka.tools.StorageTool \
        format -t "$uuid" -c "$STATE/server.properties" > "$STATE/format.log" 2>&1 \
        || { cat "$STATE/format.log" >&2; die "StorageTool format failed"; }
    nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$STATE/server.properties" > "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    wait_ready
}

# Start the broker again on the data it already has (after a crash or a stop): the
# fault tests' "restart", unlike start, which always begins with empty storage.
resume() {
    if running; then echo "$BOOTSTRAP"; return 0; fi
    [ -f "$STATE/server.properties" ] || die "no broker state in $STATE to resume (use start)"
    if port_open; then die "port $PORT is already in use by another process"; fi
    local cp="$LIBS/*"
    nohup java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STATE/log4j2.properties" \
        -cp "$cp" kafka.Kafka "$STATE/server.properties" >> "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    wait_ready
}

stop() {
    if ! running; then rm -f "$PIDFILE"; echo "stopped"; return 0; fi
    local pid; pid="$(cat "$PIDFILE")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; echo "stopped"; return 0; }
        sleep 0.5
    done
    echo "kafka.sh: broker $pid did not stop in 30 s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "stopped"
}

status() {
    if running; then echo "running $BOOTSTRAP"; else echo "stopped"; return 1; fi
}

case "${1:-}" in
    fetch) fetch ;;
    start) start ;;
    resume) resume ;;
    stop) stop ;;
    wait) wait_ready ;;
    status) status ;;
    *) echo "usage: $0 fetch|start|resume|stop|wait|status" >&2; exit 2 ;;
esac
