#!/usr/bin/env bash
# The multi-site deployment (examples/multisite) under ruwsgi, the real
# uWSGI and nginx, measured in the same run on the same machine. Prints one
# table with the ratio of each figure to uWSGI's (see bench/README.md):
#   - the routed path (HTTP router -> vassal, Host: www.example.com) and
#     the direct path (an http-socket added to the www vassal): requests/s,
#     p50/p99 latency, and server CPU per request (utime+stime of the whole
#     process tree, from /proc, over the measured runs / requests done);
#     nginx is a third router in front of ruwsgi's www vassal (uwsgi_pass);
#   - emperor reload: a vassal file touched (with new app code) under load,
#     time until the new code answers, the longest stall and failed requests;
#   - cold start of VASSALS vassals: start to every site answering through
#     the router, and SIGINT to exit;
#   - memory (PSS from /proc/PID/smaps_rollup) per role.
# Each contender runs the example copied into a temp dir, with its sockets
# there instead of /tmp/uwsgi_*.sock (the vassal files' socket lines and the
# route lines rewritten alike) and ports chosen here. wrk and the probes
# (bench/probe.py) are processes of their own.
#
# Environment:
#   DURATION    seconds per measured wrk run (default 3)
#   RUNS        wrk runs per path (default 5)
#   RELOADS     reloads per contender (default 3)
#   COLD_RUNS   cold starts per contender (default 3)
#   CONNECTIONS wrk connections (default 16; one wrk thread)
#   VASSALS     vassals for the cold start (default 20)
#   UWSGI       the real uWSGI (default: `uwsgi` on PATH); NGINX likewise
#   BUILD_PYTHON the CPython ours is built against (default: the one the
#               real uWSGI's python3 plugin links; `default`: the build's own)
# Needs wrk and python3. A missing uWSGI or nginx is skipped with a message.
# With the defaults it takes about 4 minutes after the release build on an
# idle 2-core machine (it prints how long it took).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
. bench/lib.sh

DURATION=${DURATION:-3}
RUNS=${RUNS:-5}
RELOADS=${RELOADS:-3}
COLD_RUNS=${COLD_RUNS:-3}
CONNECTIONS=${CONNECTIONS:-16}
VASSALS=${VASSALS:-20}
WARMUP=1
OURS=$REPO/target/release/uwsgi
UWSGI=${UWSGI-$(command -v uwsgi || true)}
NGINX=${NGINX-$(command -v nginx || command -v /usr/sbin/nginx || true)}
HOST=www.example.com

for tool in wrk python3 curl; do
    if ! command -v "$tool" >/dev/null; then
        echo "bench/multisite.sh: $tool is not installed (apt-get install $tool); skipping the benchmark"
        exit 0
    fi
done

echo "== building (cargo build --release)"
# Ours runs the CPython that uWSGI's python3 plugin links (built into
# target/bench-python), so both contenders start the same interpreter with
# the same site-packages (the blog is a Flask app only where Flask
# imports). BUILD_PYTHON=/path/to/python picks another, BUILD_PYTHON=default
# keeps the build's own.
BUILD_PYTHON=${BUILD_PYTHON:-}
case $BUILD_PYTHON in
    "") BUILD_PYTHON=$(uwsgi_python "$UWSGI") ;;
    default) BUILD_PYTHON= ;;
esac
if [[ -n $BUILD_PYTHON ]]; then
    export PYO3_PYTHON=$BUILD_PYTHON CARGO_TARGET_DIR=$REPO/target/bench-python
    OURS=$CARGO_TARGET_DIR/release/uwsgi
    echo "   against $BUILD_PYTHON"
fi
cargo build --release --quiet --bin uwsgi --bin uwsgi-emperor

CONTENDERS=(ruwsgi)
if is_real_uwsgi "$UWSGI"; then
    CONTENDERS+=(uWSGI)
else
    echo "bench/multisite.sh: no real uWSGI with python3 (${UWSGI:-no uwsgi on PATH}); apt-get install uwsgi-core uwsgi-plugin-python3, or UWSGI=/usr/bin/uwsgi when ruwsgi is first on PATH; no ratios"
    UWSGI=
fi
if [[ -z $NGINX ]]; then
    echo "bench/multisite.sh: nginx is not installed (apt-get install nginx); no nginx column"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ruwsgi-multisite.XXXXXX")
trap 'bench_stop_all; rm -rf "$TMP"' EXIT

binary() { # CONTENDER
    case $1 in
    ruwsgi) echo "$OURS" ;;
    uWSGI) echo "$UWSGI" ;;
    esac
}

# Copies the example to DIR with the router on 127.0.0.1:PORT and every
# /tmp/uwsgi_ socket path (vassal socket lines and route lines alike) in DIR.
setup_example() { # DIR PORT
    cp -r "$REPO/examples/multisite" "$1"
    sed -i -e "s#/tmp/uwsgi_#$1/uwsgi_#g" -e "s#^http = :8080\$#http = 127.0.0.1:$2#" \
        "$1/uwsgi.ini" "$1"/vassals.d/*.ini
    if ! grep -q "^http = 127.0.0.1:$2\$" "$1/uwsgi.ini" || grep -rq /tmp/uwsgi_ "$1"; then
        echo "bench/multisite.sh: examples/multisite changed shape; update setup_example" >&2
        exit 1
    fi
}

# The www app with a marker in its page: the "new code" of a reload.
write_www_app() { # DIR MARKER
    sed "s/Served by a plain WSGI app/Served by $2/" "$REPO/examples/multisite/sites/www/app.py" \
        >"$1/sites/www/app.py"
}

# ---------------------------------------------------------------- start
declare -A DIR ROUTED DIRECT PID
for c in "${CONTENDERS[@]}"; do
    DIR[$c]=$TMP/$c
    ROUTED[$c]=$(free_port)
    DIRECT[$c]=$(free_port)
    setup_example "${DIR[$c]}" "${ROUTED[$c]}"
    echo "http-socket = 127.0.0.1:${DIRECT[$c]}" >>"${DIR[$c]}/vassals.d/www.ini"
    bench_spawn "$TMP/$c.log" "$(binary "$c")" --ini "${DIR[$c]}/uwsgi.ini"
    PID[$c]=$BENCH_PID
done
for c in "${CONTENDERS[@]}"; do
    wait_http "${PID[$c]}" "${ROUTED[$c]}" "$HOST" "$TMP/$c.log"
    wait_http "${PID[$c]}" "${DIRECT[$c]}" "$HOST" "$TMP/$c.log"
done

# Paths to load: NAME PORT ROOT-PIDS-FOR-CPU
PATHS=()
for c in "${CONTENDERS[@]}"; do
    PATHS+=("$c:routed ${ROUTED[$c]} ${PID[$c]}")
done
if [[ -n $NGINX ]]; then
    NGINX_DIR=$TMP/nginx
    mkdir -p "$NGINX_DIR"
    NGINX_PORT=$(free_port)
    params=""
    for kv in QUERY_STRING:query_string REQUEST_METHOD:request_method CONTENT_TYPE:content_type \
        CONTENT_LENGTH:content_length REQUEST_URI:request_uri PATH_INFO:document_uri \
        DOCUMENT_ROOT:document_root SERVER_PROTOCOL:server_protocol REQUEST_SCHEME:scheme \
        REMOTE_ADDR:remote_addr REMOTE_PORT:remote_port SERVER_PORT:server_port SERVER_NAME:server_name; do
        params+="            uwsgi_param ${kv%%:*} \$${kv#*:};"$'\n'
    done
    cat >"$NGINX_DIR/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NGINX_DIR/cb;
    proxy_temp_path $NGINX_DIR/px;
    fastcgi_temp_path $NGINX_DIR/fc;
    uwsgi_temp_path $NGINX_DIR/uw;
    scgi_temp_path $NGINX_DIR/sc;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
$params            uwsgi_pass unix:${DIR[ruwsgi]}/uwsgi_www.sock;
        }
    }
}
EOF
    bench_spawn "$TMP/nginx.log" "$NGINX" -e "$NGINX_DIR/error.log" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf"
    NGINX_PID=$BENCH_PID
    wait_http "$NGINX_PID" "$NGINX_PORT" "$HOST" "$TMP/nginx.log"
    www_master=$(proc_tool find "${PID[ruwsgi]}" vassals.d/www.ini)
    PATHS+=("nginx:routed $NGINX_PORT $NGINX_PID $www_master")
fi
for c in "${CONTENDERS[@]}"; do
    PATHS+=("$c:direct ${DIRECT[$c]} ${PID[$c]}")
done

# ---------------------------------------------------------------- load
CLK_TCK=$(getconf CLK_TCK)
declare -A RATE P50 P99 REQS TICKS FAILED
echo "== load: wrk -t1 -c$CONNECTIONS, Connection: close, ${RUNS}x${DURATION}s per path, interleaved"
for p in "${PATHS[@]}"; do
    read -r name port _ <<<"$p"
    wrk_run "$port" "$HOST" "$WARMUP" "$CONNECTIONS" >/dev/null
    RATE[$name]="" P50[$name]="" P99[$name]="" REQS[$name]=0 TICKS[$name]=0 FAILED[$name]=0
done
for ((run = 1; run <= RUNS; run++)); do
    for p in "${PATHS[@]}"; do
        read -r name port roots <<<"$p"
        # shellcheck disable=SC2086 # roots is a list of pids
        before=$(proc_tool cpu $roots)
        read -r count rps p50 p99 failed < <(wrk_run "$port" "$HOST" "$DURATION" "$CONNECTIONS")
        # shellcheck disable=SC2086
        after=$(proc_tool cpu $roots)
        RATE[$name]+="$rps " P50[$name]+="$p50 " P99[$name]+="$p99 "
        REQS[$name]=$((REQS[$name] + count))
        TICKS[$name]=$((TICKS[$name] + after - before))
        FAILED[$name]=$((FAILED[$name] + failed))
        printf '   %-14s run %d: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n' "$name" "$run" "$rps" "$p50" "$p99"
    done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
declare -A FIG # FIG[metric:column]
for p in "${PATHS[@]}"; do
    read -r name _ <<<"$p"
    col=${name%%:*} path=${name#*:}
    FIG[$path-rps:$col]=$(med "${RATE[$name]}")
    FIG[$path-p50:$col]=$(med "${P50[$name]}")
    FIG[$path-p99:$col]=$(med "${P99[$name]}")
    FIG[$path-cpu:$col]=$(awk -v t="${TICKS[$name]}" -v hz="$CLK_TCK" -v r="${REQS[$name]}" \
        'BEGIN {printf "%.1f", r ? t / hz / r * 1e6 : 0}')
    FIG[$path-failed:$col]=${FAILED[$name]}
done

# ---------------------------------------------------------------- memory
for c in "${CONTENDERS[@]}"; do
    read -r emperor router master0 worker0 master worker total < <(
        proc_tool roles "${PID[$c]}" "$(router_pid "$TMP/$c.log")" vassals.d/blog.ini)
    FIG[pss-emperor:$c]=$emperor FIG[pss-router:$c]=$router
    FIG[pss-main-master:$c]=$master0 FIG[pss-main-worker:$c]=$worker0
    FIG[pss-master:$c]=$master FIG[pss-worker:$c]=$worker FIG[pss-total:$c]=$total
done

# ---------------------------------------------------------------- reload
echo "== emperor reload: new www code, touch vassals.d/www.ini under load (4 probe threads), ${RELOADS}x"
declare -A RELOAD STALL RFAILED
for ((k = 1; k <= RELOADS; k++)); do
    for c in "${CONTENDERS[@]}"; do
        marker="reload-$k-$RANDOM"
        write_www_app "${DIR[$c]}" "$marker"
        read -r ms stall failed < <("$PYTHON" bench/probe.py reload --port "${ROUTED[$c]}" --host "$HOST" \
            --marker "$marker" --touch "${DIR[$c]}/vassals.d/www.ini")
        RELOAD[$c]+="$ms " STALL[$c]+="$stall " RFAILED[$c]=$((${RFAILED[$c]:-0} + failed))
        printf '   %-8s reload %d: new code after %5d ms, longest stall %5d ms, %d failed\n' "$c" "$k" "$ms" "$stall" "$failed"
    done
done
for c in "${CONTENDERS[@]}"; do
    FIG[reload:$c]=$(med "${RELOAD[$c]}") FIG[stall:$c]=$(med "${STALL[$c]}")
    FIG[reload-failed:$c]=${RFAILED[$c]}
done
bench_stop_all

# ---------------------------------------------------------------- cold start
echo "== cold start: $VASSALS vassals, until each site answers through the router, ${COLD_RUNS}x"
declare -A COLD STOP
for ((run = 1; run <= COLD_RUNS; run++)); do
    for c in "${CONTENDERS[@]}"; do
        dir=$TMP/cold-$c-$run port=$(free_port) hosts=""
        setup_example "$dir" "$port"
        rm "$dir"/vassals.d/*.ini
        for ((i = 1; i <= VASSALS; i++)); do
            site=$(printf 'site%02d' "$i")
            cp "$REPO/examples/multisite/vassals.d/www.ini" "$dir/vassals.d/$site.ini"
            sed -i "s#/tmp/uwsgi_#$dir/uwsgi_#g" "$dir/vassals.d/$site.ini"
            cp -r "$dir/sites/www" "$dir/sites/$site"
            hosts+="$site.example.com,"
        done
        read -r start stop < <("$PYTHON" bench/probe.py coldstart --port "$port" --hosts "$hosts" \
            --log "$dir.log" -- "$(binary "$c")" --ini "$dir/uwsgi.ini")
        COLD[$c]+="$start " STOP[$c]+="$stop "
        printf '   %-8s run %d: all %d sites answer after %5d ms, exit %5d ms after SIGINT\n' "$c" "$run" "$VASSALS" "$start" "$stop"
        rm -rf "$dir"
    done
done
for c in "${CONTENDERS[@]}"; do
    FIG[cold:$c]=$(med "${COLD[$c]}") FIG[stop:$c]=$(med "${STOP[$c]}")
done

# ---------------------------------------------------------------- table
# Above 1.00x the column beats uWSGI: more req/s, or less time, CPU, memory.
ratio() { # VALUE REF BETTER
    awk -v v="$1" -v r="$2" -v b="$3" 'BEGIN {
        if (b == "-" || v == "" || r == "" || v + 0 <= 0 || r + 0 <= 0) print "-"
        else printf "%.2fx", b == "high" ? v / r : r / v }'
}
cell() { echo "${FIG[$1:$2]:--}"; }
{
    echo
    echo "== results ($(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $("$OURS" --version | head -1); uWSGI ${UWSGI:+$("$UWSGI" --version)}${UWSGI:-not installed}; nginx ${NGINX:+$("$NGINX" -v 2>&1 | sed 's/.*\///')}${NGINX:-not installed})"
    printf '%-40s %10s %10s %7s %10s %7s\n' "" ruwsgi uWSGI ratio nginx ratio
    # metric|label|better: high (more is better), low (less is better), - (no ratio)
    while IFS='|' read -r metric label better; do
        printf '%-40s %10s %10s %7s %10s %7s\n' "$label" "$(cell "$metric" ruwsgi)" "$(cell "$metric" uWSGI)" \
            "$(ratio "${FIG[$metric:ruwsgi]:-}" "${FIG[$metric:uWSGI]:-}" "$better")" \
            "$(cell "$metric" nginx)" "$(ratio "${FIG[$metric:nginx]:-}" "${FIG[$metric:uWSGI]:-}" "$better")"
    done <<EOF
routed-rps|routed: req/s|high
routed-p50|routed: p50 latency, ms|low
routed-p99|routed: p99 latency, ms|low
routed-cpu|routed: server CPU, us/request|low
routed-failed|routed: failed requests (all runs)|-
direct-rps|direct: req/s|high
direct-p50|direct: p50 latency, ms|low
direct-p99|direct: p99 latency, ms|low
direct-cpu|direct: server CPU, us/request|low
direct-failed|direct: failed requests (all runs)|-
reload|reload: touch to new code, ms|low
stall|reload: longest stall under load, ms|low
reload-failed|reload: failed requests (all reloads)|-
cold|cold start, $VASSALS vassals, ms|low
stop|SIGINT to exit, $VASSALS vassals, ms|low
pss-emperor|PSS emperor, MiB|low
pss-router|PSS router, MiB|low
pss-main-master|PSS main master, MiB|low
pss-main-worker|PSS main worker, MiB|low
pss-master|PSS vassal master (www, notfound), MiB|low
pss-worker|PSS vassal worker (www, notfound), MiB|low
pss-total|PSS whole tree (3 vassals), MiB|low
EOF
    echo "(ratio: against uWSGI, above 1.00x is better: more req/s, or less time, CPU or memory;"
    echo " routed = HTTP router -> vassal; nginx = nginx uwsgi_pass -> ruwsgi's vassal; direct = http-socket on the vassal;"
    echo " vassal PSS: mean over the plain-WSGI vassals; the whole tree includes the blog, a Flask app where the"
    echo " contender's Python has Flask, plain WSGI otherwise;"
    echo " medians of $RUNS load runs, $RELOADS reloads, $COLD_RUNS cold starts; CPU = utime+stime of the whole server tree / requests)"
    echo "took $((SECONDS / 60)) min $((SECONDS % 60)) s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$TMP/table"
mkdir -p "$REPO/target/bench"
cp "$TMP/table" "$REPO/target/bench/multisite.txt"
