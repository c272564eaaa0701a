# Shell functions shared by the bench scripts; source it after `set -euo
# pipefail`. Servers started with bench_spawn are leaders of their own
# process group and are stopped by pid (bench_stop_all, also on exit).

BENCH_PIDS=()
# The interpreter itself, not a version manager's shim (pyenv's costs a
# bash script per call, and the /proc readings run twice per measured run).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')

# Starts CMD... in a new session with output to LOG; sets BENCH_PID (setsid
# does not fork when its caller is not a group leader, so $! is the server).
bench_spawn() { # LOG CMD...
    local log=$1
    shift
    setsid "$@" </dev/null >"$log" 2>&1 &
    BENCH_PID=$!
    BENCH_PIDS+=("$BENCH_PID")
}

# SIGKILL to the process group each PID leads, then reap it (for servers
# started as group leaders whose measured runs are over).
bench_kill_groups() { # PID...
    local pid
    for pid in "$@"; do
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# SIGINT to each server, up to 15 s for it to exit, then SIGKILL to its
# process group (vassals and workers included).
bench_stop_all() {
    local pid i
    for pid in "${BENCH_PIDS[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    BENCH_PIDS=()
}

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until http://127.0.0.1:PORT/ with Host: HOST answers 200.
wait_http() { # PID PORT HOST LOG
    local deadline=$((SECONDS + 60))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $3" "http://127.0.0.1:$2/") == 200 ]]; do
        if ((SECONDS > deadline)) || ! kill -0 "$1" 2>/dev/null; then
            echo "server $1 did not answer for $3 on port $2; its log ($4):" >&2
            tail -20 "$4" >&2
            return 1
        fi
        sleep 0.1
    done
}

median() { sort -g | awk '{v[NR] = $1} END {if (!NR) print "nan"; else print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# One wrk run against http://127.0.0.1:PORT/ with Host: HOST and
# `Connection: close`; prints "requests req/s p50_ms p99_ms failed".
# Failed counts non-2xx answers, connect errors and timeouts; wrk's read
# errors are left out (they count the server closing the connection after
# its answer, which `Connection: close` asks for).
wrk_run() { # PORT HOST SECONDS CONNECTIONS
    wrk -t 1 -c "$4" -d "${3}s" --latency -H "Host: $2" -H "Connection: close" "http://127.0.0.1:$1/" |
        awk 'function ms(v) {
                 if (v ~ /us$/) return v * 1e-3; if (v ~ /ms$/) return v + 0
                 if (v ~ /m$/) return v * 60e3; return v * 1e3 }
             /requests in/ {n = $1} /^Requests\/sec:/ {r = $2}
             $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
             /Non-2xx/ {f += $NF} /Socket errors/ {gsub(",", ""); f += $4 + $10}
             END {printf "%d %.1f %.3f %.3f %d\n", n, r, p50, p99, f}'
}

# /proc readings over process trees (python: /proc/PID/stat has a
# free-text command field). Subcommands:
#   cpu ROOT...     clock ticks of utime+stime+cutime+cstime summed over
#                   each ROOT and its descendants (reaped children count in
#                   their parent, live ones on their own)
#   find ROOT TEXT  the pid of the topmost descendant of ROOT whose command
#                   line contains TEXT
#   roles ROOT ROUTER [SKIP]  PSS in MiB of the roles of a master + http +
#                   emperor instance: emperor router main-master
#                   main-worker(mean) vassal-master(mean)
#                   vassal-worker(mean) whole-tree; vassals whose command
#                   line contains SKIP are left out of the vassal means
proc_tool() {
    "$PYTHON" - "$@" <<'EOF'
import os, sys

def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()

children = {}
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            children.setdefault(int(stat(name)[1]), []).append(int(name))
        except (OSError, IndexError):
            pass

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")

def mean(values):
    return sum(values) / len(values) if values else float("nan")

what = sys.argv[1]
if what == "cpu":
    total = 0
    for root in sys.argv[2:]:
        for p in tree(int(root)):
            try:
                total += sum(int(x) for x in stat(p)[11:15])
            except (OSError, IndexError):
                pass
    print(total)
elif what == "find":
    todo = [int(sys.argv[2])]
    while todo:
        p = todo.pop(0)
        if sys.argv[3] in cmdline(p):
            print(p)
            break
        todo.extend(children.get(p, []))
elif what == "roles":
    root, router = int(sys.argv[2]), int(sys.argv[3])
    kids = [p for p in children.get(root, []) if p != router]
    emperors = [p for p in kids if children.get(p)]
    main_workers = [p for p in kids if p not in emperors]
    skip = sys.argv[4] if len(sys.argv) > 4 else None
    masters = [m for e in emperors for m in children.get(e, []) if not (skip and skip in cmdline(m))]
    workers = [w for m in masters for w in children.get(m, [])]
    print("%.1f %.1f %.1f %.1f %.1f %.1f %.1f" % (
        mean([pss(p) for p in emperors]), pss(router), pss(root),
        mean([pss(p) for p in main_workers]),
        mean([pss(p) for p in masters]), mean([pss(p) for p in workers]),
        sum(pss(p) for p in tree(root))))
EOF
}

# The first pid logged as "spawned uWSGI http 1 (pid: N)" in LOG.
router_pid() { # LOG
    sed -n 's/.*spawned uWSGI http 1 (pid: \([0-9]*\)).*/\1/p' "$1" | head -1
}

# Is $1 the real uWSGI with the python3 plugin (not ruwsgi under that name)?
is_real_uwsgi() { # BIN
    [[ -n $1 ]] && "$1" --plugins python3 --version >/dev/null 2>&1 &&
        ! "$1" --version 2>&1 | grep -q ruwsgi
}

# The python binary whose libpython the real uWSGI's python3 plugin links
# (e.g. /usr/bin/python3.11), when it can be found with its shared library
# to link against; nothing otherwise. Building ruwsgi against it gives both
# contenders the same interpreter start-up (site-packages, .pth files).
uwsgi_python() { # UWSGI
    local dir plugin lib ver py
    [[ -n ${1:-} ]] || return 0
    dir=$(dirname "$(readlink -f "$1")")
    for plugin in "$dir/../lib/uwsgi/plugins/python3_plugin.so" /usr/lib/uwsgi/plugins/python3_plugin.so; do
        [[ -f $plugin ]] || continue
        lib=$(ldd "$plugin" 2>/dev/null | awk '/libpython/ {print $3; exit}')
        ver=$(sed -n 's/.*libpython\([0-9]*\.[0-9]*\).*/\1/p' <<<"$lib")
        [[ -n $ver ]] || continue
        for py in "$(dirname "$lib")/../bin/python$ver" "/usr/bin/python$ver"; do
            if [[ -x $py ]] && ls "$(dirname "$lib")/libpython$ver.so" >/dev/null 2>&1; then
                readlink -f "$py"
                return 0
            fi
        done
    done
}
