#!/usr/bin/env bash
# WSGI serving speed of ruwsgi against the real uWSGI (and Granian when it
# is installed), measured in the same run on the same machine:
#   hello world (tests/apps/hello.py) through `http-socket` on 127.0.0.1,
#   with 1 and with 2 workers, loaded by wrk (a second process).
# For each worker count the contenders run side by side and their runs are
# interleaved (ours, uWSGI, Granian, ours, ...), so load from elsewhere on
# the machine hits them alike. For each one it prints, in one table:
#   - requests/s: the median of RUNS runs of DURATION seconds (after a
#     short warm-up), and the ratio to uWSGI (target for ours: >= 1.5);
#   - server CPU per request: utime+stime (plus reaped children) of every
#     process in the server's process group, from /proc, over its measured
#     runs, divided by the requests wrk completed;
#   - memory after the runs, from /proc/PID/smaps_rollup: the master's RSS
#     and PSS, and the mean PSS of one worker; then our master's RSS above
#     the interpreter's own (the Python our binary links, importing the
#     same app; target < 2 MiB).
#
# wrk keeps its connections alive by default, as the issue's measurement
# asks: ruwsgi and Granian keep them for HTTP/1.1, uWSGI's http-socket
# closes after each response (so it pays a new connection per request).
# KEEPALIVE=0 sends `Connection: close` on every request instead, so every
# server pays for a new connection per request (like for like).
#
# Environment:
#   DURATION    seconds per measured run (default 10)
#   RUNS        measured runs per contender (default 3)
#   CONNECTIONS wrk connections (default 32); wrk uses one thread
#   KEEPALIVE   0 to send `Connection: close` on every request (default 1)
#   UWSGI       the reference binary (default: the `uwsgi` on PATH)
# Needs wrk (apt-get install wrk); the real uWSGI needs uwsgi-core and
# uwsgi-plugin-python3; Granian runs when `python3 -m granian` works
# (pip install granian). A missing contender is skipped with a message.
# With the defaults it takes about 3.5 minutes after the release build.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-32}
KEEPALIVE=${KEEPALIVE:-1}
WARMUP=2
OURS=$REPO/target/release/uwsgi
UWSGI=${UWSGI:-$(command -v uwsgi || true)}
APPS=$REPO/tests/apps

if ! command -v wrk >/dev/null; then
    echo "bench/wsgi.sh: wrk is not installed (apt-get install wrk); skipping the benchmark"
    exit 0
fi

echo "== building (cargo build --release)"
cargo build --release --quiet --bin uwsgi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruwsgi-wsgi-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
. bench/lib.sh
stop_servers() {
    bench_kill_groups "${PIDS[@]}"
    PIDS=()
}
trap 'stop_servers; rm -rf "$TMP"' EXIT

# /proc readings for the process group PGID (in python: /proc/PID/stat
# has a free-text command field).
proc_tool() { # cpu|mem PGID
    python3 - "$@" <<'EOF'
import os, sys

what, pgid = sys.argv[1], int(sys.argv[2])

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()

members = []
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            if int(stat(name)[2]) == pgid:
                members.append(int(name))
        except (OSError, IndexError):
            pass

if what == "cpu":
    # utime stime cutime cstime (fields 14-17): reaped children count in
    # their parent, live ones on their own, so nothing is counted twice.
    print(sum(sum(int(x) for x in stat(p)[11:15]) for p in members))
else:
    def rollup(pid):
        kb = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    kb[parts[0].rstrip(":")] = int(parts[1])
        return kb
    master = rollup(pgid)
    workers = [rollup(p)["Pss"] for p in members if p != pgid]
    mean = sum(workers) / len(workers) if workers else float("nan")
    print("%.1f %.1f %.1f" % (master["Rss"] / 1024, master["Pss"] / 1024, mean / 1024))
EOF
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # PID PORT LOG
    local deadline=$((SECONDS + 30))
    until curl -fs -o /dev/null "http://127.0.0.1:$2/"; do
        if ((SECONDS > deadline)) || ! kill -0 "$1" 2>/dev/null; then
            echo "server did not become ready; its log:" >&2
            tail -20 "$3" >&2
            return 1
        fi
        sleep 0.1
    done
}

WRK_HEADER=(-H "Connection: close")
[[ $KEEPALIVE == 1 ]] && WRK_HEADER=()

# One wrk run; prints "requests req/s failed".
wrk_run() { # PORT SECONDS
    local out
    out=$(wrk -t 1 -c "$CONNECTIONS" -d "${2}s" "${WRK_HEADER[@]}" "http://127.0.0.1:$1/")
    # Failed: non-2xx answers, connect errors and timeouts. wrk's "read"
    # errors are left out: they count the server closing a connection
    # after its response without `Connection: close`, which is how uWSGI's
    # http-socket (and ours, when asked to close) ends every exchange.
    awk '/requests in/ {n = $1} /^Requests\/sec:/ {r = $2}
         /Non-2xx/ {f += $NF} /Socket errors/ {gsub(",", ""); f += $4 + $10}
         END {print n + 0, r + 0, f + 0}' <<<"$out"
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

have_uwsgi=0
if [[ -n $UWSGI ]] && "$UWSGI" --plugins python3 --version >/dev/null 2>&1 &&
    ! "$UWSGI" --plugins python3 --version 2>&1 | grep -q ruwsgi; then
    have_uwsgi=1
else
    echo "bench/wsgi.sh: the real uWSGI with python3 is not installed (apt-get install uwsgi-core uwsgi-plugin-python3); no ratio"
fi
have_granian=0
if python3 -m granian --version >/dev/null 2>&1; then
    have_granian=1
else
    echo "bench/wsgi.sh: Granian is not installed (pip install granian); skipped"
fi

CLK_TCK=$(getconf CLK_TCK)
RESULTS=$TMP/results
: >"$RESULTS"
mode="Connection: close on every request"
[[ $KEEPALIVE == 1 ]] && mode="keep-alive where the server allows it"
echo "== hello world through http-socket, wrk -t1 -c$CONNECTIONS, ${RUNS}x${DURATION}s per contender ($mode)"
load_start=$(cut -d' ' -f1 /proc/loadavg)

# Starts a contender for $workers: NAME PORT CMD..., as the leader of a new
# process group (setsid does not fork: a background job of a script is not
# a group leader, so $! is the server).
start() {
    local name=$1 port=$2
    shift 2
    setsid "$@" </dev/null >"$TMP/$name-$workers.log" 2>&1 &
    PIDS+=($!) names+=("$name") ports+=("$port")
}

for workers in 1 2; do
    names=() ports=()
    common=(--master --processes "$workers" --wsgi-file "$APPS/hello.py" --disable-logging)
    port=$(free_port)
    start ruwsgi "$port" "$OURS" --http-socket "127.0.0.1:$port" "${common[@]}"
    if ((have_uwsgi)); then
        port=$(free_port)
        start uWSGI "$port" "$UWSGI" --plugins python3 --http-socket "127.0.0.1:$port" "${common[@]}"
    fi
    if ((have_granian)); then
        port=$(free_port)
        start granian "$port" python3 -m granian --interface wsgi --no-ws --host 127.0.0.1 --port "$port" \
            --workers "$workers" --working-dir "$APPS" hello:application
    fi
    n=${#names[@]}
    rates=() reqs=() ticks=() fails=()
    for ((c = 0; c < n; c++)); do
        wait_ready "${PIDS[c]}" "${ports[c]}" "$TMP/${names[c]}-$workers.log"
        wrk_run "${ports[c]}" "$WARMUP" >/dev/null
        reqs[$c]=0 ticks[$c]=0 fails[$c]=0 rates[$c]=""
    done
    for ((run = 1; run <= RUNS; run++)); do
        for ((c = 0; c < n; c++)); do
            before=$(proc_tool cpu "${PIDS[c]}")
            read -r count rps failed < <(wrk_run "${ports[c]}" "$DURATION")
            after=$(proc_tool cpu "${PIDS[c]}")
            rates[$c]+="$rps "
            reqs[$c]=$((reqs[$c] + count))
            ticks[$c]=$((ticks[$c] + after - before))
            fails[$c]=$((fails[$c] + failed))
            printf '   %-8s %s worker(s) run %d: %s req/s\n' "${names[c]}" "$workers" "$run" "$rps"
        done
    done
    for ((c = 0; c < n; c++)); do
        med=$(tr ' ' '\n' <<<"${rates[$c]}" | grep . | median)
        cpu=$(awk -v t="${ticks[$c]}" -v hz="$CLK_TCK" -v r="${reqs[$c]}" 'BEGIN {printf "%.1f", r ? t / hz / r * 1e6 : 0}')
        echo "${names[c]} $workers $med $cpu $(proc_tool mem "${PIDS[c]}") ${fails[$c]}" >>"$RESULTS"
    done
    stop_servers
done

echo
echo "== results ($(nproc) CPUs; $("$OURS" --version 2>/dev/null | head -1); ${UWSGI:-no uWSGI})"
awk '
    BEGIN {
        printf "%-8s %7s %12s %9s %10s %11s %11s %11s %7s\n", "server", "workers", "req/s (med)", "vs uWSGI",
            "CPU us/req", "master RSS", "master PSS", "worker PSS", "failed"
    }
    { rows[NR] = $0; if ($1 == "uWSGI") ref[$2] = $3 }
    END {
        for (i = 1; i <= NR; i++) {
            split(rows[i], f, " ")
            ratio = (f[2] in ref && ref[f[2]] > 0) ? sprintf("%.2fx", f[3] / ref[f[2]]) : "-"
            printf "%-8s %7s %12.0f %9s %10s %9s M %9s M %9s M %7s\n", f[1], f[2], f[3], ratio, f[4], f[5], f[6], f[7], f[8]
        }
    }' "$RESULTS"
# The interpreter's own RSS: the Python our binary embeds (found from the
# libpython it links), importing the same app, read at the end of the import.
libpython=$(ldd "$OURS" | awk '/libpython/ {print $3; exit}')
pyver=$(sed -n 's/.*libpython\([0-9]*\.[0-9]*\).*/\1/p' <<<"$libpython")
interp=""
for cand in "$(dirname "$libpython")/../bin/python$pyver" "/usr/bin/python$pyver"; do
    [[ -n $pyver && -x $cand ]] && interp=$cand && break
done
if [[ -n $interp ]]; then
    base=$("$interp" -c '
import sys
sys.path.insert(0, sys.argv[1])
import hello
for line in open("/proc/self/smaps_rollup"):
    if line.startswith("Rss:"):
        print("%.1f" % (int(line.split()[1]) / 1024))
' "$APPS")
    echo
    echo "master RSS above the interpreter's own ($(readlink -f "$interp") importing the same app: $base MiB; target for ours: < 2 MiB):"
    awk -v base="$base" '$1 == "ruwsgi" {printf "  %-8s %s worker(s): %+.1f MiB\n", $1, $2, $5 - base}' "$RESULTS"
else
    echo "(no python$pyver binary beside $libpython: the interpreter's own RSS is not measured)"
fi
echo "(memory in MiB; worker PSS is the mean over the workers; CPU counts every process of the server;"
echo " failed = non-2xx answers, connect errors and timeouts)"
echo "load average: $load_start at the start, $(cut -d' ' -f1 /proc/loadavg) at the end (other load makes the numbers noisy)"
