#!/usr/bin/env bash
# The HTTP router against the real uWSGI, measured in the same run on the
# same machine, on the multi-site article's setup: two vassals (alpha,
# beta) on unix sockets, and an instance with `http =` and two rules,
#   route-host = ^static\.example\.org$ uwsgi:DIR/uwsgi_beta.sock,0,0
#   route-host = ^([a-z]+)\.example\.com$ uwsgi:DIR/uwsgi_$1.sock,0,0
# Each stack runs entirely under one binary (uWSGI's router takes two hops:
# router -> worker, whose routing forwards to the vassal; ours routes in the
# router: one hop). wrk (a second process, one thread) sends
# `Host: alpha.example.com`, so the regex rule picks the vassal.
#
# Runs are interleaved (each target once per round) and the figures are
# medians of RUNS rounds. It prints each figure with its ratio and target:
#   - routed requests/s, ours vs uWSGI (target >= 5x);
#   - routed p99 latency, ours vs uWSGI (target <= 0.5x);
#   - a direct http-socket to our alpha vassal vs routed through ours
#     (target: direct/routed <= 1.3);
#   - nginx `uwsgi_pass` to the same vassal vs ours, when nginx is
#     installed (target <= 1.2);
#   - 1000 non-matching route-host rules ahead of the matching one vs the
#     plain setup (target: < 10% fewer requests/s);
#   - IDLE (10,000) idle keep-alive connections held open on our router:
#     throughput cost (< 10%) and the router's extra RSS (< 50 MiB);
#   - the router process's RSS at idle (< 5 MiB), both binaries.
#
# Environment: DURATION seconds per run (default 3), RUNS rounds (default
# 3), CONNECTIONS wrk connections (default 32), IDLE connections (default
# 10000), UWSGI the reference binary (default: `uwsgi` on PATH, with the
# python3, http and router_uwsgi plugins). Needs wrk; without the real
# uWSGI or nginx their figures are skipped with a message. About 3 minutes
# after the release build with the defaults.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
DURATION=${DURATION:-3}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-32}
IDLE=${IDLE:-10000}
OURS=$REPO/target/release/uwsgi
UWSGI=${UWSGI:-$(command -v uwsgi || true)}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

if ! command -v wrk >/dev/null; then
    echo "bench/router.sh: wrk is not installed (apt-get install wrk); skipping the benchmark"
    exit 0
fi
# Room for the idle connections (the client and the router each hold one
# descriptor per connection).
ulimit -n $((IDLE * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== building (cargo build --release)"
cargo build --release --quiet --bin uwsgi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruwsgi-router-bench.XXXXXX")
PIDS=()
# shellcheck source=bench/lib.sh
. bench/lib.sh
stop_all() {
    bench_kill_groups "${PIDS[@]}"
    PIDS=()
}
trap 'stop_all; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts NAME: CMD... as the leader of a new process group (setsid does not
# fork: a background job of a script is not a group leader).
start() {
    local name=$1
    shift
    setsid "$@" </dev/null >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}

wait_http() { # NAME PORT HOST
    local deadline=$((SECONDS + 30))
    until curl -fs -o /dev/null -H "Host: $3" "http://127.0.0.1:$2/"; do
        if ((SECONDS > deadline)); then
            echo "$1 did not answer on port $2; its log:" >&2
            tail -20 "$TMP/$1.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# The gateway process of an instance: "spawned uWSGI http 1 (pid: N)".
router_pid() {
    sed -n 's/.*spawned uWSGI http 1 (pid: \([0-9]*\)).*/\1/p' "$TMP/$1.log" | tail -1
}

# utime+stime (clock ticks, reaped children included) of every process in
# process group PGID.
cpu_ticks() {
    python3 - "$1" <<'EOF2'
import os, sys
pgid = int(sys.argv[1])
total = 0
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open(f"/proc/{name}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            if int(st[2]) == pgid:
                total += sum(int(x) for x in st[11:15])
        except (OSError, IndexError):
            pass
print(total)
EOF2
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# One wrk run; prints "req/s p99_ms non2xx requests".
wrk_run() { # PORT HOST SECONDS
    wrk -t 1 -c "$CONNECTIONS" -d "${3}s" --latency -H "Host: $2" "http://127.0.0.1:$1/" |
        awk '/requests in/ {n = $1} /^Requests\/sec:/ {r = $2}
             /^ +99%/ {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
                       m = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}
             /Non-2xx/ {f += $NF} /Socket errors/ {gsub(",", ""); f += $4 + $6 + $10}
             END {print r + 0, m + 0, f + 0, n + 0}'
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "n/a"}'; }

have_uwsgi=0
if [[ -n $UWSGI ]] && "$UWSGI" --plugins python3,http,router_uwsgi --version >/dev/null 2>&1 &&
    ! "$UWSGI" --version 2>&1 | grep -q ruwsgi; then
    have_uwsgi=1
else
    echo "bench/router.sh: the real uWSGI with python3, http and router_uwsgi is not installed; no uWSGI ratios"
fi
have_nginx=0
if [[ -x $NGINX ]]; then have_nginx=1; else echo "bench/router.sh: nginx is not installed; no nginx ratio"; fi

# The app: a fixed body with its length, so every server may keep the
# connection alive.
cat >"$TMP/app.py" <<'EOF'
import os


def application(environ, start_response):
    body = b"Hello from " + os.environ.get("SITE", "?").encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
EOF

# A stack: two vassals and the routing instance, all under BIN. Prints
# nothing; sets the ports in globals. KIND is ours|uwsgi; EXTRA_RULES is a
# file of rules put ahead of the two.
stack() { # KIND BIN EXTRA_RULES
    local kind=$1 bin=$2 extra=$3 d=$TMP/$1 plugins=""
    mkdir -p "$d"
    [[ $kind == uwsgi ]] && plugins="plugins = python3,http,router_uwsgi"
    local site
    for site in alpha beta; do
        local hport
        hport=$(free_port)
        cat >"$d/$site.ini" <<EOF
[uwsgi]
$plugins
master = true
processes = 2
socket = $d/uwsgi_$site.sock
http-socket = 127.0.0.1:$hport
wsgi-file = $TMP/app.py
env = SITE=$site
disable-logging = true
EOF
        start "${kind}_$site" "$bin" --ini "$d/$site.ini"
        eval "HPORT_${kind}_$site=$hport"
    done
    local rport
    rport=$(free_port)
    {
        echo "[uwsgi]"
        echo "$plugins"
        echo "master = true"
        echo "http = 127.0.0.1:$rport"
        echo "http-keepalive = 1"
        echo "socket = $d/router.sock"
        echo "processes = 2"
        echo "disable-logging = true"
        echo "http-quiet = true"
        [[ -n $extra ]] && cat "$extra"
        echo "route-host = ^static\\.example\\.org\$ uwsgi:$d/uwsgi_beta.sock,0,0"
        echo "route-host = ^([a-z]+)\\.example\\.com\$ uwsgi:$d/uwsgi_\$1.sock,0,0"
    } >"$d/router.ini"
    start "${kind}_router" "$bin" --ini "$d/router.ini"
    eval "RPORT_$kind=$rport"
}

stack ours "$OURS" ""
for i in $(seq 1 1000); do echo "route-host = ^nomatch$i\\.example\\.net\$ uwsgi:/nonexistent.sock,0,0"; done >"$TMP/rules1000"
# The 1000-rule router shares our vassals.
mkdir -p "$TMP/ours1000"
R1000=$(free_port)
sed -e "s|^http = .*|http = 127.0.0.1:$R1000|" -e "s|^socket = .*|socket = $TMP/ours1000/router.sock|" \
    -e "/^disable-logging/r $TMP/rules1000" "$TMP/ours/router.ini" >"$TMP/ours1000/router.ini"
start ours1000 "$OURS" --ini "$TMP/ours1000/router.ini"
((have_uwsgi)) && stack uwsgi "$UWSGI" ""
if ((have_nginx)); then
    NPORT=$(free_port)
    cat >"$TMP/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $TMP/cb; proxy_temp_path $TMP/px; fastcgi_temp_path $TMP/fc;
  uwsgi_temp_path $TMP/uw; scgi_temp_path $TMP/sc;
  server {
    listen 127.0.0.1:$NPORT;
    location / {
      include /etc/nginx/uwsgi_params;
      uwsgi_pass unix:$TMP/ours/uwsgi_alpha.sock;
    }
  }
}
EOF
    start nginx "$NGINX" -e "$TMP/nginx.err" -p "$TMP" -c "$TMP/nginx.conf"
fi

HOST=alpha.example.com
wait_http ours_router "$RPORT_ours" "$HOST"
wait_http ours1000 "$R1000" "$HOST"
wait_http ours_alpha "$HPORT_ours_alpha" "$HOST"
((have_uwsgi)) && wait_http uwsgi_router "$RPORT_uwsgi" "$HOST"
((have_nginx)) && wait_http nginx "$NPORT" "$HOST"
sleep 1
OUR_ROUTER=$(router_pid ours_router)
IDLE_RSS_OURS=$(rss_mib "$OUR_ROUTER")
IDLE_RSS_UWSGI=n/a
((have_uwsgi)) && IDLE_RSS_UWSGI=$(rss_mib "$(router_pid uwsgi_router)")

# Targets: name port front-pgid (the process group doing the routing, whose
# CPU per request is the routing cost; 0: not measured).
TARGETS=("routed-ours $RPORT_ours $PID_ours_router" "direct-http-socket $HPORT_ours_alpha 0"
    "routed-1000-rules $R1000 $PID_ours1000")
((have_uwsgi)) && TARGETS+=("routed-uwsgi $RPORT_uwsgi $PID_uwsgi_router")
((have_nginx)) && TARGETS+=("nginx-uwsgi_pass $NPORT $PID_nginx")
CLK_TCK=$(getconf CLK_TCK)

echo "== wrk -t1 -c$CONNECTIONS, ${RUNS} rounds of ${DURATION}s, Host: $HOST (load before: $(cut -d' ' -f1 /proc/loadavg))"
declare -A RPS P99 FAIL TICKS REQS
for t in "${TARGETS[@]}"; do
    read -r name port pg <<<"$t"
    wrk_run "$port" "$HOST" 1 >/dev/null
done
for ((round = 1; round <= RUNS; round++)); do
    for t in "${TARGETS[@]}"; do
        read -r name port pg <<<"$t"
        ((pg)) && before=$(cpu_ticks "$pg")
        read -r rps p99 failed count < <(wrk_run "$port" "$HOST" "$DURATION")
        ((pg)) && TICKS[$name]=$((${TICKS[$name]:-0} + $(cpu_ticks "$pg") - before))
        REQS[$name]=$((${REQS[$name]:-0} + count))
        RPS[$name]+="$rps " P99[$name]+="$p99 " FAIL[$name]=$((${FAIL[$name]:-0} + failed))
    done
done

# Idle keep-alive connections on our router: each sent one request and
# read its answer, then stays open.
echo "== $IDLE idle keep-alive connections on our router"
python3 - "$RPORT_ours" "$IDLE" "$TMP/idle.ready" "$TMP/idle.stop" <<'EOF' &
import socket, sys, os, time
port, n, ready, stop = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = []
req = b"GET / HTTP/1.1\r\nHost: alpha.example.com\r\n\r\n"
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(4096) or b"\r\n\r\n"
    head, _, body = got.partition(b"\r\n\r\n")
    length = [l for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
    want = int(length[0].split(b":")[1]) if length else 0
    while len(body) < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    socks.append(s)
open(ready, "w").write(str(len(socks)))
while not os.path.exists(stop):
    time.sleep(0.1)
EOF
IDLE_PID=$!
deadline=$((SECONDS + 120))
until [[ -s $TMP/idle.ready ]] || ((SECONDS > deadline)) || ! kill -0 "$IDLE_PID" 2>/dev/null; do sleep 0.2; done
HELD=$(cat "$TMP/idle.ready" 2>/dev/null || echo 0)
BUSY_RSS=$(rss_mib "$OUR_ROUTER")
for ((round = 1; round <= RUNS; round++)); do
    before=$(cpu_ticks "$PID_ours_router")
    read -r rps p99 failed count < <(wrk_run "$RPORT_ours" "$HOST" "$DURATION")
    TICKS[routed-ours-idle]=$((${TICKS[routed-ours-idle]:-0} + $(cpu_ticks "$PID_ours_router") - before))
    REQS[routed-ours-idle]=$((${REQS[routed-ours-idle]:-0} + count))
    RPS[routed-ours-idle]+="$rps "
done
touch "$TMP/idle.stop"
wait "$IDLE_PID" 2>/dev/null || true

echo
printf "%-22s %10s %9s %14s %7s   %s\n" target "req/s" "p99 ms" "front us/req" failed "runs (req/s)"
declare -A MR MP CPU
for t in "${TARGETS[@]}" "routed-ours-idle 0 $PID_ours_router"; do
    read -r name port pg <<<"$t"
    MR[$name]=$(median <<<"${RPS[$name]}")
    MP[$name]=$(median <<<"${P99[$name]:-0}")
    CPU[$name]=$(awk -v t="${TICKS[$name]:-0}" -v n="${REQS[$name]:-0}" -v hz="$CLK_TCK" -v pg="$pg" \
        'BEGIN {if (pg > 0 && n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-"}')
    printf "%-22s %10.0f %9.2f %14s %7s   %s\n" "$name" "${MR[$name]}" "${MP[$name]}" "${CPU[$name]}" "${FAIL[$name]:-0}" "${RPS[$name]}"
done
echo "(front us/req: CPU time of the routing tier per request: our router process group,"
echo " uWSGI's router and the workers that route, nginx; the vassals are not counted)"
echo
echo "== ratios (machine: $(nproc) cores; medians)"
if ((have_uwsgi)); then
    echo "routed req/s ours/uWSGI:           $(ratio "${MR[routed-ours]}" "${MR[routed-uwsgi]}")x   (target >= 5)"
    echo "routing CPU/req uWSGI/ours:        $(ratio "${CPU[routed-uwsgi]}" "${CPU[routed-ours]}")x   (how much cheaper our routing tier is)"
    echo "routed p99 ours/uWSGI:             $(ratio "${MP[routed-ours]}" "${MP[routed-uwsgi]}")x   (target <= 0.5)"
fi
echo "direct http-socket / routed:       $(ratio "${MR[direct-http-socket]}" "${MR[routed-ours]}")x   (target <= 1.3)"
((have_nginx)) && echo "nginx uwsgi_pass / routed:         $(ratio "${MR[nginx-uwsgi_pass]}" "${MR[routed-ours]}")x   (target <= 1.2)"
echo "1000 rules ahead, throughput cost: $(awk -v a="${MR[routed-1000-rules]}" -v b="${MR[routed-ours]}" 'BEGIN {printf "%.1f%%", (1 - a / b) * 100}')   (target < 10%)"
echo "1000 rules ahead, router CPU/req:  $(ratio "${CPU[routed-1000-rules]}" "${CPU[routed-ours]}")x of 1 rule"
echo "$HELD idle keep-alive conns, cost:  $(awk -v a="${MR[routed-ours-idle]}" -v b="${MR[routed-ours]}" 'BEGIN {printf "%.1f%%", (1 - a / b) * 100}')   (target < 10%)"
echo "  router CPU/req with them:        $(ratio "${CPU[routed-ours-idle]}" "${CPU[routed-ours]}")x of without"
echo "router RSS with them, extra:       $(awk -v a="$BUSY_RSS" -v b="$IDLE_RSS_OURS" 'BEGIN {printf "%.1f MiB", a - b}')   (target < 50 MiB)"
echo "router RSS at idle:                ours $IDLE_RSS_OURS MiB, uWSGI $IDLE_RSS_UWSGI MiB   (target < 5 MiB)"
