#!/usr/bin/env bash
# The emperor of ruwsgi against the real uWSGI's, measured in the same run
# on the same machine, runs interleaved (ours, uWSGI, ours, ...) so that
# load from elsewhere hits both alike. Each figure is the median of RUNS
# runs and is printed beside uWSGI's:
#   - touch to new code: a vassal's app.py is replaced and its .ini touched
#     (the usual deploy); seconds until a request gets the new code
#     (target: under 1 s; uWSGI polls every 3 s, then stops its workers
#     before importing the app);
#   - longest request during that reload: two clients loop requests at the
#     vassal all along; the slowest request, and how many failed
#     (target: under 100 ms, none failed);
#   - cold start of COLD vassals: from launching the emperor until every
#     vassal answers (target: at most half uWSGI's time);
#   - the emperor's own RSS with one vassal running (and the private part
#     of it, not shared with other processes), and the CPU it uses in IDLE
#     seconds of idleness (targets: RSS under 2 MiB, no CPU).
# Ours runs from a directory holding `uwsgi` and the `uwsgi-emperor` that
# LEAN picks (README "Building and installing").
# The apps take IMPORT seconds to import (a small real app), so a request
# that waits for an import shows.
#
# Environment:
#   RUNS    runs per contender and figure (default 3)
#   COLD    vassals in the cold-start figure (default 50)
#   IMPORT  seconds the app's import takes (default 0.3)
#   IDLE    seconds of idleness measured (default 3)
#   UWSGI   the reference binary (default: the `uwsgi` on PATH)
#   LEAN    the emperor executable beside ours: `static` (default:
#           uwsgi-emperor linked statically), `dynamic` (as `cargo build`
#           makes it) or `none` (the emperor runs inside uwsgi)
#   PYTHON  build ruwsgi against this interpreter (PYO3_PYTHON, in
#           target/bench-python/). Default: the interpreter the real
#           uWSGI's python3 plugin links (found from the plugin), so that
#           both vassals pay the same interpreter start-up; PYTHON=default
#           keeps the build's own
# Needs python3 (the clients); the real uWSGI needs uwsgi-core and
# uwsgi-plugin-python3 (without it only ruwsgi is measured).
# With the defaults it takes about 2 minutes after the release build.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=${RUNS:-3}
COLD=${COLD:-50}
IMPORT=${IMPORT:-0.3}
IDLE=${IDLE:-3}
OURS=$REPO/target/release/uwsgi
UWSGI=${UWSGI:-$(command -v uwsgi || true)}
CLIENT="python3 $REPO/bench/emperor_client.py"

LEAN=${LEAN:-static}
BUILD_PYTHON=${PYTHON:-}
# shellcheck source=bench/lib.sh
. bench/lib.sh
echo "== building (cargo build --release)"
case $BUILD_PYTHON in
    "") BUILD_PYTHON=$(uwsgi_python "$UWSGI") ;;
    default) BUILD_PYTHON= ;;
esac
if [ -n "$BUILD_PYTHON" ]; then
    export PYO3_PYTHON=$BUILD_PYTHON CARGO_TARGET_DIR=$REPO/target/bench-python
    OURS=$CARGO_TARGET_DIR/release/uwsgi
    echo "   against $BUILD_PYTHON"
fi
cargo build --release --quiet --bin uwsgi --bin uwsgi-emperor
LEAN_BIN=$(dirname "$OURS")/uwsgi-emperor
case $LEAN in
static)
    echo "   uwsgi-emperor linked statically"
    host=$(rustc -vV | sed -n 's/^host: //p')
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --quiet --profile emperor \
        --no-default-features --bin uwsgi-emperor --target "$host"
    LEAN_BIN=${CARGO_TARGET_DIR:-$REPO/target}/$host/emperor/uwsgi-emperor
    ;;
dynamic) ;;
none) LEAN_BIN= ;;
*)
    echo "bench/emperor.sh: LEAN is static, dynamic or none, not $LEAN" >&2
    exit 2
    ;;
esac

if [ -n "$UWSGI" ] && ! "$UWSGI" --plugins python3 --version 2>/dev/null | grep -q '^2\.0'; then
    echo "bench/emperor.sh: $UWSGI is not uWSGI 2.0 with the python3 plugin; measuring ruwsgi alone"
    UWSGI=
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruwsgi-emperor-bench.XXXXXX")
EMPEROR=
stop_emperor() {
    if [ -n "$EMPEROR" ]; then
        kill -INT "$EMPEROR" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$EMPEROR" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$EMPEROR" 2>/dev/null || true
        wait "$EMPEROR" 2>/dev/null || true
        EMPEROR=
    fi
}
cleanup() {
    stop_emperor
    rm -rf "$TMP"
}
trap cleanup EXIT
# Ours as installed: `uwsgi` runs the `uwsgi-emperor` in its own directory.
mkdir "$TMP/bin"
ln "$OURS" "$TMP/bin/uwsgi" 2>/dev/null || cp "$OURS" "$TMP/bin/uwsgi"
if [ -n "$LEAN_BIN" ]; then
    cp "$LEAN_BIN" "$TMP/bin/uwsgi-emperor"
fi
OURS=$TMP/bin/uwsgi

# app SOURCE_FILE VERSION: a WSGI app answering VERSION after a slow import.
app() {
    cat >"$1" <<EOF
import time
time.sleep($IMPORT)
def application(environ, start_response):
    body = b"$2"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
EOF
}

# vassal FILE PORT DIR: a vassal serving DIR/app.py over HTTP on PORT.
vassal() {
    printf '[uwsgi]\nplugins = python3\nmaster = true\nhttp-socket = 127.0.0.1:%s\nchdir = %s\nwsgi-file = app.py\nprocesses = %s\ndisable-logging = true\n' \
        "$2" "$3" "${4:-2}" >"$1"
}

# emperor_cmd NAME DIR: sets CMD to NAME's emperor command on DIR/vassals.
emperor_cmd() {
    if [ "$1" = uwsgi ]; then
        CMD=("$UWSGI" --plugins python3 --emperor "$2/vassals")
    else
        CMD=("$OURS" --emperor "$2/vassals")
    fi
}

# launch NAME DIR: starts NAME's emperor on DIR/vassals (own process group).
launch() {
    emperor_cmd "$1" "$2"
    setsid "${CMD[@]}" >>"$2/emperor.log" 2>&1 &
    EMPEROR=$!
}

cpu_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# One reload run: prints
# "touch_s stall_ms failures requests rss_kib idle_cpu_ms private_kib".
reload_run() {
    local name=$1 dir=$TMP/$1-reload-$2 port
    mkdir -p "$dir/vassals"
    port=$($CLIENT ports 1)
    app "$dir/app.py" v1
    app "$dir/new.py" v2
    vassal "$dir/vassals/app.ini" "$port" "$dir"
    launch "$name" "$dir"
    $CLIENT wait "$(date +%s.%N)" 60 "$port" >/dev/null
    local out
    out=$($CLIENT reload "$port" "$dir/app.py" "$dir/vassals/app.ini" v2 "$dir/new.py")
    sleep 1
    local rss private before after hz
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$EMPEROR/status")
    private=$(awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$EMPEROR/smaps_rollup")
    hz=$(getconf CLK_TCK)
    before=$(cpu_ticks "$EMPEROR")
    sleep "$IDLE"
    after=$(cpu_ticks "$EMPEROR")
    stop_emperor
    echo "$out $rss $(((after - before) * 1000 / hz)) $private"
}

# One cold start: prints seconds until COLD vassals all serve.
cold_run() {
    local name=$1 dir=$TMP/$1-cold-$2 ports i=0 p
    mkdir -p "$dir/vassals"
    IMPORT=0 app "$dir/app.py" hello
    ports=$($CLIENT ports "$COLD")
    for p in $ports; do
        i=$((i + 1))
        vassal "$dir/vassals/v$i.ini" "$p" "$dir" 1
    done
    # The client launches the emperor, so that its own start-up is not
    # timed, and stops it.
    emperor_cmd "$name" "$dir"
    # shellcheck disable=SC2086
    $CLIENT cold "$dir/emperor.log" 120 $ports -- "${CMD[@]}"
}

median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

NAMES=(ours)
[ -n "$UWSGI" ] && NAMES+=(uwsgi)
for run in $(seq "$RUNS"); do
    for name in "${NAMES[@]}"; do
        echo "== run $run: $name reload under load"
        reload_run "$name" "$run" | tee -a "$TMP/$name.reload"
        echo "== run $run: $name cold start of $COLD vassals"
        cold_run "$name" "$run" | tee -a "$TMP/$name.cold"
    done
done

col() { awk -v c="$2" '{ print $c }' "$TMP/$1.reload" | median; }
figure() { # LABEL UNIT OURS UWSGI TARGET
    local ratio="-"
    if [ "$4" != "-" ] && awk -v a="$3" -v b="$4" 'BEGIN { exit !(a > 0 && b > 0) }'; then
        ratio=$(awk -v a="$3" -v b="$4" 'BEGIN { printf "%.2f", a / b }')
    fi
    printf '%-34s %12s %12s %8s   %s\n' "$1 ($2)" "$3" "$4" "$ratio" "$5"
}
get() { # NAME WHAT
    if [ ! -f "$TMP/$1.reload" ]; then
        echo "-"
        return
    fi
    case $2 in
    touch) col "$1" 1 ;;
    stall) col "$1" 2 ;;
    failed) awk '{ s += $3 } END { print s }' "$TMP/$1.reload" ;;
    rss) awk '{ print $5 / 1024 }' "$TMP/$1.reload" | median ;;
    idle) col "$1" 6 ;;
    private) awk '{ print $7 / 1024 }' "$TMP/$1.reload" | median ;;
    cold) median <"$TMP/$1.cold" ;;
    esac
}

echo
echo "== medians of $RUNS runs (COLD=$COLD, IMPORT=${IMPORT}s, IDLE=${IDLE}s, LEAN=$LEAN)"
printf '%-34s %12s %12s %8s   %s\n' figure ruwsgi uWSGI ours/uWSGI target
figure "touch to new code" s "$(get ours touch)" "$(get uwsgi touch)" "< 1 s"
figure "longest request during reload" ms "$(get ours stall)" "$(get uwsgi stall)" "< 100 ms"
figure "failed requests, all reloads" n "$(get ours failed)" "$(get uwsgi failed)" "0"
figure "cold start of $COLD vassals" s "$(get ours cold)" "$(get uwsgi cold)" "ratio <= 0.5"
figure "emperor RSS, one vassal" MiB "$(get ours rss)" "$(get uwsgi rss)" "< 2 MiB"
figure "  of which private (not shared)" MiB "$(get ours private)" "$(get uwsgi private)" "-"
figure "emperor CPU in ${IDLE}s idle" ms "$(get ours idle)" "$(get uwsgi idle)" "0"
