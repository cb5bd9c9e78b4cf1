#!/usr/bin/env bash
# tools/test.sh - run every test of ituna-core, from a fresh clone:
#   1. C unit tests (ctest) built plain, then under ASan+UBSan with LeakSanitizer,
#      and the deterministic ones again under valgrind memcheck; the libFuzzer targets
#      (tests/fuzz) for a bounded time each;
#   2. the Python package installed with pip, its tests (pytest); the binary wheel
#      (tools/build-wheel.sh) on a machine without build tools, and the Kafka and
#      export tests again on the wheel's librdkafka;
#   3. a real Apache Kafka broker (tools/kafka.sh) and a real Jaeger v2
#      (tools/jaeger.sh) started on 127.0.0.1 for the Kafka, Lua, integration and
#      end-to-end tests, and stopped at the end.
# Exits non-zero when anything fails; never passes without running tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=${PYTHON:-python3}
JOBS=${ITUNA_JOBS:-2}
export ITUNA_ARTIFACTS="${ITUNA_ARTIFACTS:-$ROOT/artifacts}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
mkdir -p "$ITUNA_ARTIFACTS"
step() { printf '\n=== %s ===\n' "$*"; }

if [ "${ITUNA_SKIP_DEPS:-0}" != 1 ]; then
    step "dependencies"
    bash tools/install-deps.sh --test
fi

step "C format (clang-format, .clang-format)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
echo "every C file matches .clang-format"

step "C build (plain, -Wall -Wextra -Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DITUNA_WERROR=ON >/dev/null
cmake --build build -j"$JOBS"

step "C build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DITUNA_SANITIZE=ON -DITUNA_WERROR=ON -DITUNA_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"

step "fuzzing (libFuzzer + ASan + UBSan, ${ITUNA_FUZZ_SECONDS:-20} s per target)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DITUNA_FUZZ=ON -DITUNA_WERROR=ON \
    -DITUNA_BUILD_BENCH=OFF -DITUNA_BUILD_LUA=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS"
for t in fuzz_traceparent fuzz_tracestate fuzz_baggage fuzz_ini fuzz_json; do
    # new inputs go to a scratch dir (first), the committed seeds are only read
    work=$(mktemp -d)
    build-fuzz/tests/fuzz/$t -max_total_time="${ITUNA_FUZZ_SECONDS:-20}" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$ITUNA_ARTIFACTS/$t-" "$work" "tests/fuzz/corpus/$t" >"$ITUNA_ARTIFACTS/$t.log" 2>&1 ||
        { tail -60 "$ITUNA_ARTIFACTS/$t.log"; echo "fuzz: $t found a crash (input in $ITUNA_ARTIFACTS)"; exit 1; }
    rm -rf "$work"
    echo "fuzz: $t $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$ITUNA_ARTIFACTS/$t.log" | awk '{print $2}') runs, no crash"
done

step "real Kafka broker and Jaeger"
cleanup() {
    bash tools/kafka.sh stop >/dev/null 2>&1 || true
    bash tools/jaeger.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash tools/jaeger.sh build
bash tools/kafka.sh start
bash tools/jaeger.sh start
export ITUNA_TEST_KAFKA="$(bash tools/kafka.sh status | awk '{print $2}')"
eval "$(bash tools/jaeger.sh env)"
export ITUNA_TEST_JAEGER_OTLP ITUNA_TEST_JAEGER_QUERY
echo "kafka at $ITUNA_TEST_KAFKA, jaeger OTLP at $ITUNA_TEST_JAEGER_OTLP, query at $ITUNA_TEST_JAEGER_QUERY"

step "C, Lua and embedding tests (plain build)"
(cd build && ctest --output-on-failure -j"$JOBS")

step "C tests under ASan + UBSan + LeakSanitizer"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -L unit -j"$JOBS")

step "C tests under valgrind memcheck"
for t in test_propagate test_baggage test_config test_encode; do
    if [ -x "build/tests/$t" ]; then
        valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
            "build/tests/$t" >/dev/null 2>"$ITUNA_ARTIFACTS/valgrind-$t.log" ||
            { cat "$ITUNA_ARTIFACTS/valgrind-$t.log"; echo "valgrind: $t failed"; exit 1; }
        echo "valgrind: $t clean"
    fi
done

# Debian's Python refuses pip installs outside a venv (PEP 668); this script sets the
# machine up on purpose, so it says so. pyenv's Python has no such marker.
[ -f "$($PY -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null)/EXTERNALLY-MANAGED" ] &&
    export PIP_BREAK_SYSTEM_PACKAGES=1
step "Python package (pip install .)"
$PY -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
export ITUNA_LUA="$ROOT/build/bindings/lua/ituna-lua"
export LUA_CPATH="$ROOT/build/bindings/lua/?.so;;"

# The binary wheel users get (librdkafka 2.12.1, libcurl, OpenSSL inside; sources and
# built libraries cached under ~/.cache/ituna): tests/wheel installs it on a machine
# without headers or system libraries, and the Kafka and export tests run against it
# too, so the librdkafka wheel users get is tested as well as the system's.
step "binary wheel (tools/build-wheel.sh)"
ITUNA_TEST_WHEEL=$(bash tools/build-wheel.sh "$PY" | tail -n 1)
export ITUNA_TEST_WHEEL
echo "$ITUNA_TEST_WHEEL"
rm -rf build-wheel-site
$PY -m pip install -q --disable-pip-version-check --no-deps --target build-wheel-site "$ITUNA_TEST_WHEEL"

step "Python Kafka and OTLP export tests on the wheel (its librdkafka)"
set +e
ITUNA_PYTHON_TREE="$ROOT/build-wheel-site" $PY -m pytest -q -p no:cacheprovider \
    tests/python/test_binding_kafka.py tests/python/test_binding_kafka_more.py tests/python/test_export_http.py
wheel_rc=$?
set -e

step "Python, integration, end-to-end, fault and wheel tests (pytest)"
dirs=""
for d in tests/python tests/integration tests/e2e tests/faults tests/wheel; do [ -d "$d" ] && dirs="$dirs $d"; done
set +e
$PY -m pytest -q -p no:cacheprovider $dirs
rc=$?
set -e
if [ $rc -eq 5 ] || [ $wheel_rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi
[ $wheel_rc -eq 0 ] || { echo "the tests on the wheel failed (exit $wheel_rc)"; [ $rc -ne 0 ] || rc=$wheel_rc; }
exit $rc
