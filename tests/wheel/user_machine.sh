#!/usr/bin/env bash
# user_machine.sh WHEEL WORK BOOTSTRAP ENDPOINT - a wheel user's machine, made inside
# a private mount namespace (it re-runs itself under `unshare -m`; the mounts
# vanish with the namespace; needs root, as CI is):
#   - every C header hidden (/usr/include, /usr/local/include, Python's include dir),
#     the C compiler hidden, and the system's librdkafka, libcurl, cJSON and Lua
#     libraries replaced by empty files, so nothing can be built or borrowed;
#   - a fresh venv (no system site-packages) gets the wheel, binary only;
#   - wheel_user_check.py: produce -> consume on BOOTSTRAP, OTLP export to ENDPOINT;
#   - `ituna-restaurant --orders 5` on the embedded broker, from an empty directory;
#   - `ituna-report` on that run's traces.
# Outputs land in WORK (check.json, restaurant.log, report.txt) for the pytest side.
set -euo pipefail
wheel=$1 work=$2 bootstrap=$3 endpoint=$4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py=${PYTHON:-python3}
pybin=$(command -v "$py")
pyinc=$("$py" -c 'import sysconfig; print(sysconfig.get_path("include"))')
die() { echo "user_machine: $*" >&2; exit 1; }
# Re-run in a mount namespace of its own, and never hide anything in the caller's.
if [ -z "${ITUNA_OUTER_MNT_NS:-}" ]; then
    ITUNA_OUTER_MNT_NS=$(readlink /proc/self/ns/mnt) exec unshare -m --propagation private bash "$0" "$@"
fi
[ "$(readlink /proc/self/ns/mnt)" != "$ITUNA_OUTER_MNT_NS" ] || die "unshare -m did not make a mount namespace"

# ---- hide ------------------------------------------------------------------------------
for d in /usr/include /usr/local/include "$pyinc"; do
    [ -d "$d" ] && mount -t tmpfs -o ro,size=1m none "$d"
done
hidden=0
for dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib /usr/local/lib; do
    [ -d "$dir" ] || continue
    while IFS= read -r f; do
        mount --bind /dev/null "$f"; hidden=$((hidden + 1))
    done < <(find "$dir" -maxdepth 1 -type f \( -name 'librdkafka*.so*' -o -name 'libcurl*.so*' \
        -o -name 'libcjson*.so*' -o -name 'liblua5.4*.so*' \))
done
for cc in gcc cc x86_64-linux-gnu-gcc-12 clang; do
    f=$(readlink -f "$(command -v $cc 2>/dev/null || echo /nonexistent)")
    [ -f "$f" ] && mount --bind /dev/null "$f"
done
[ ! -e /usr/include/stdio.h ] || die "headers still visible"
[ ! -e "$pyinc/Python.h" ] || die "Python.h still visible"
"$py" -c '
import ctypes, sys
for lib in ("librdkafka.so.1", "libcurl.so.4", "libcjson.so.1"):
    try:
        ctypes.CDLL(lib)
    except OSError:
        continue
    sys.exit("the system " + lib + " still loads")
' || die "system libraries still load"
echo "user_machine: hid the headers, the compiler and $hidden system library files"

# ---- install and run as a user would ------------------------------------------------------
env_user=(env -i HOME="$work/home" PATH="$work/venv/bin:/usr/bin:/bin" LANG=C.UTF-8
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}")
mkdir -p "$work/home" "$work/empty"
"$pybin" -m venv "$work/venv"
"${env_user[@]}" "$work/venv/bin/pip" install -q --only-binary :all: "$wheel"
"${env_user[@]}" "$work/venv/bin/python" -c 'import ituna, sys; print("ituna", ituna.__version__, "librdkafka", ituna.RDKAFKA_VERSION)'
(cd "$work/empty" && "${env_user[@]}" "$work/venv/bin/python" "$here/wheel_user_check.py" "$bootstrap" "$endpoint") \
    >"$work/check.json"
(cd "$work/empty" && "${env_user[@]}" timeout 300 ituna-restaurant --orders 5 --run-dir "$work/run") \
    >"$work/restaurant.log" 2>&1 || { tail -n 40 "$work/restaurant.log"; die "ituna-restaurant failed"; }
(cd "$work/empty" && "${env_user[@]}" timeout 120 ituna-report "$work/run/traces.jsonl") \
    >"$work/report.txt" 2>&1 || { cat "$work/report.txt"; die "ituna-report failed"; }
echo "user_machine: done"
