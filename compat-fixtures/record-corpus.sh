#!/usr/bin/env bash
# Record what the reference uWSGI does with each real-world ini file of the corpus.
#
# usage: compat-fixtures/record-corpus.sh [uwsgi-binary [corpus-dir [NNN...]]]
#
# With NNN arguments only those files are (re-)recorded; the other rows of
# UNRECORDABLE.tsv are kept. Recording all 212 files takes about ten minutes.
#
# The corpus dir defaults to $RUWSGI_CORPUS, else ../shared/corpus/ini next to
# the repository. The reference is uWSGI 2.0.21 (Debian `uwsgi-core` 2.0.21,
# `apt-get install -y uwsgi-core uwsgi-plugin-python3`); any other version is
# refused.
#
# For every NNN.ini: copy it alone into a fresh temp dir and run the show
# recipe there,
#
#     env -i PATH="$PATH" HOME=<tmp> LANG=C timeout 10 BIN --ini NNN.ini [EXTRA...] \
#         --show-config --privileged-binary-patch true </dev/null
#
# and write compat-fixtures/corpus/NNN/{rc,block,load,errline} (normalised as in
# lib.sh). When the plain recipe cannot show the configuration, EXTRA arguments
# neutralise the cause and the whole argument list (the part before
# `--show-config`) is written to NNN/args, one per line:
#
#   daemonize (forks, logs to a file)   --set daemonize=/dev/stderr
#   logto (logs to a file)              --set logto=/dev/stderr
#   pidfile (written before the exec)   --set pidfile=ruwsgi.pid (inside the temp dir)
#   log-date (a time prefix per line)   --set log-date=LOGDATE  (a constant prefix)
#   log-master, or options implying it --set log-master=false  (spec §12.4)
#   strict + an option of a plugin that a standard (pip) uWSGI build embeds but
#   Debian ships as a loadable plugin (python, http, fastrouter, logfile, ...)
#                                       --plugins P first (python -> python3; our
#                                       binary has these built in)
#
# A file whose expansion depends on the machine's CPU count (%k) also gets
# NNN/requires (`ncpus=N`): the replay skips it on a machine with another count.
#
# Files that cannot be recorded safely or deterministically are listed with the
# reason in compat-fixtures/corpus/UNRECORDABLE.tsv and get no NNN/ directory:
# options that act on the machine before the recipe's exec or at exit
# (exec-*/hook-*/call-*/mount-* phases other than those of a running master,
# stop/reload/signal, chroot, unshare, setns, jail, flock, spooler, which mkdirs
# its directory while configuring, fallback-config, ...), `exec://` and network
# sources, machine- or run-dependent values (%h %t %u ..., @(/proc/...), a
# socket with port 0 on a specific address, bound while configuring), an
# unterminated logic block (it would swallow the recipe and the reference would
# start for real), strict mode with an option of an embedded plugin missing
# here (gevent), and a hang.
#
# Safety: that static scan runs first; every run is under `timeout` in its temp
# dir; the --get probes that detect daemonize/logto/pidfile/log-date switch
# vacuum off (its exit handler unlinks the pidfiles and the stats socket named
# in the file); a file with vacuum on whose run ends in an error exit while it
# names pidfile2/safe-pidfile*/stats is not run with vacuum; a process still
# running from the temp dir afterwards is killed by its pid.
set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=compat-fixtures/lib.sh
. "$here/lib.sh"

bin=${1:-uwsgi}
corpus=${2:-${RUWSGI_CORPUS:-$here/../../shared/corpus/ini}}
[ $# -gt 2 ] && shift 2 || set --
check_reference "$bin" || exit 2
[ -d "$corpus" ] || { echo "record-corpus.sh: no corpus at $corpus" >&2; exit 2; }
corpus=$(cd "$corpus" && pwd)

outroot=$here/corpus
mkdir -p "$outroot"
unrec=$outroot/UNRECORDABLE.tsv
files=()
if [ $# -gt 0 ]; then
    kept=$(mktemp)
    for n in "$@"; do files+=("$corpus/$n.ini"); done
    # keep the rows of the files not re-recorded now
    tail -n +2 "$unrec" 2>/dev/null | grep -v -F -f <(printf '%s.ini\t\n' "$@") >"$kept"
    { printf 'file\treason\n'; cat "$kept"; } >"$unrec"
    rm -f "$kept"
else
    files=("$corpus"/[0-9]*.ini)
    printf 'file\treason\n' >"$unrec"
fi

ncpus() {
    getconf _NPROCESSORS_ONLN
}

# keys FILE: every key of FILE (any section), one per line, trimmed.
keys() {
    tr -d '\r' <"$1" | sed -e 's/^[[:space:]]*//' -e '/^$/d' -e '/^[;#[]/d' \
        -e 's/=.*//' -e 's/[[:space:]]*$//'
}

# danger FILE: a reason not to run FILE at all, or nothing.
danger() {
    local f=$1 k
    while IFS= read -r k; do
        case $k in
            *-master-start|*-accepting|*-accepting1|*-accepting-once|*-accepting1-once|\
            *-pre-app|*-post-app|*-post-fork)
                ;;  # hooks of a running master or worker: never reached
            stop|reload|pause|suspend|resume|signal|chroot|unshare|unshare2|early-emperor|\
            extract|connect-and-read|build-plugin|cflags|dot-h|dlopen|immediate-uid|immediate-gid|\
            shared-socket|early-envdir|envdir|flock|flock2|flock-wait|flock-wait2|fallback-config|\
            privileged-binary-patch*|unprivileged-binary-patch*|spooler|spooler-external|\
            setns*|jail*|exec-*|hook-*|call-*|mount-*|umount-*)
                echo "option '$k' acts on the machine before the recipe's exec (or at exit)"
                return ;;
        esac
    done < <(keys "$f")
    if grep -q 'exec://' "$f"; then
        echo "exec:// runs a shell command while the config is read"; return
    fi
    if grep -q -E '@\((http|https|tcp)://|^[[:space:]]*(ini|include|inherit|xml|yaml|yml|json|js|config)[[:space:]]*=[[:space:]]*(http|https|tcp)://' "$f"; then
        echo "reads a config source over the network"; return
    fi
    if tr -d '\r' <"$f" | grep -E '^[[:space:]]*([a-z0-9]+-)*socket[[:space:]]*=.*:0?[[:space:]]*$' |
            grep -q -v -E '=[[:space:]]*(0\.0\.0\.0|127\.[0-9.]+|localhost)?:0?[[:space:]]*$'; then
        echo "a socket with port 0 on a specific address is bound while the config is read (depends on the machine's addresses)"; return
    fi
    if grep -q -E '@\(/(proc|sys|dev)/' "$f"; then
        echo "@() reads a machine-dependent file"; return
    fi
    if tr -d '\r' <"$f" | sed 's/%%//g' | grep -q -E '%[hTtVbuUgGiIjJ]'; then
        echo "uses a machine- or run-dependent magic variable (%h %t %T %V %b %u %U %g %G %i %I %j %J)"; return
    fi
    # An unterminated logic block would swallow the recipe's options and the
    # reference would start for real.
    local open=0
    while IFS= read -r k; do
        case $k in
            for|for-glob|for-readline|for-times|if-*|ifenv|ifexists|ifdir|ifplugin) open=1 ;;
            endfor|end-for|endif|end-if|end) open=0 ;;
        esac
    done < <(keys "$f")
    if [ $open = 1 ]; then
        echo "unterminated logic block would swallow the recipe's options"; return
    fi
}

# get_probe TMP KEY: the reference's --get KEY for the file (first entry), or
# nothing. --get comes first: it exits right after the configure phase; vacuum
# is switched off because its exit handler unlinks the pidfiles and the stats
# socket named in the file.
get_probe() {
    (cd "$1" && env -i PATH="$PATH" HOME="$1" LANG=C timeout -k 2 10 "$bin" --get "$2" --ini "$name.ini" \
        --set vacuum=false </dev/null 2>/dev/null)
}

# The plugins embedded in a standard uWSGI 2.0.21 build (buildconf/base.ini,
# with python for the main plugin) that Debian ships as loadable ones.
EMBEDDED="python3 ping cache nagios rrdtool carbon rpc corerouter fastrouter http ugreen signal
syslog rsyslog logsocket router_uwsgi router_redirect router_basicauth zergpool redislog
router_rewrite router_http logfile router_cache rawrouter router_static sslrouter spooler
cheaper_busyness symcall transformation_tofile transformation_gzip transformation_chunked
transformation_offload router_memcached router_redis router_hash router_expires router_metrics
transformation_template stats_pusher_socket"
# Embedded in a standard build but not packaged with uwsgi-core: a strict file
# using their options cannot be recorded faithfully here.
MISSING_EMBEDDED="gevent mongodblog"
helpdir=$(mktemp -d /tmp/ruwsgi-record.XXXXXX)
env -i PATH="$PATH" "$bin" --help </dev/null >"$helpdir/core" 2>/dev/null

# embedded_plugin_of NAME: the embedded plugin that defines option NAME (and
# the core does not), or nothing.
embedded_plugin_of() {
    local p
    grep -q -E -- "--$1( |$)" "$helpdir/core" && return
    for p in $EMBEDDED; do
        [ -f "$helpdir/$p" ] ||
            env -i PATH="$PATH" "$bin" --plugins "$p" --help </dev/null >"$helpdir/$p" 2>/dev/null
        if grep -q -E -- "--$1( |$)" "$helpdir/$p"; then
            echo "$p"
            return
        fi
    done
}

# has TMP KEY: whether the file sets KEY (an empty value counts).
has() {
    [ "$(get_probe "$1" "$2" | wc -c)" -gt 0 ]
}

# run TMP SCRATCH ARGS...: run the recipe, capturing stderr through a pipe so
# that a daemonized grandchild is waited for; sets RC.
run() {
    local tmp=$1 scratch=$2
    shift 2
    (cd "$tmp" && env -i PATH="$PATH" HOME="$tmp" LANG=C timeout -k 2 10 "$bin" "$@" \
        --show-config --privileged-binary-patch true </dev/null 2>&1 >"$scratch/stdout"
        echo $? >"$scratch/rc") | timeout 20 cat >"$scratch/stderr"
    RC=$(cat "$scratch/rc" 2>/dev/null || echo 124)
}

# reap TMP: kill, by pid, any process still running with its cwd in TMP.
reap() {
    local real p pid
    real=$(cd "$1" && pwd -P)
    for p in $(find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$real" -o -lname "$real/*" \) 2>/dev/null); do
        pid=${p#/proc/}
        pid=${pid%/cwd}
        echo "  killing leftover pid $pid" >&2
        kill -9 "$pid" 2>/dev/null
    done
}

# vacuum_risk TMP: with vacuum on, an error exit unlinks the pidfiles and the
# stats socket; name one of them that is outside TMP, if any.
vacuum_risk() {
    local k v
    has "$1" vacuum || return 0
    for k in pidfile2 safe-pidfile safe-pidfile2 stats; do
        v=$(get_probe "$1" "$k")
        case $v in
            ''|*:*|@*) ;;
            *) echo "$k=$v"; return ;;
        esac
    done
}

recorded=0
skipped=0
for f in "${files[@]}"; do
    [ -f "$f" ] || { echo "record-corpus.sh: no such file: $f" >&2; continue; }
    name=$(basename "$f" .ini)
    out=$outroot/$name
    rm -rf "$out"

    reason=$(danger "$f")
    if [ -n "$reason" ]; then
        printf '%s.ini\t%s\n' "$name" "$reason" >>"$unrec"
        printf '%s: UNRECORDABLE: %s\n' "$name" "$reason"
        skipped=$((skipped + 1))
        continue
    fi

    tmp=$(make_tmp)
    scratch=$(mktemp -d /tmp/ruwsgi-record.XXXXXX)
    cp "$f" "$tmp/$name.ini"

    # What the file really configures (after its own logic and expansion).
    extra=()
    if has "$tmp" daemonize; then
        extra+=(--set daemonize=/dev/stderr)
    elif has "$tmp" logto; then
        extra+=(--set logto=/dev/stderr)
    fi
    has "$tmp" pidfile && extra+=(--set pidfile=ruwsgi.pid)
    if has "$tmp" log-date || has "$tmp" logdate; then
        extra+=(--set log-date=LOGDATE)
    fi

    risk=$(vacuum_risk "$tmp")
    if [ -n "$risk" ]; then
        # find out whether the run ends in an error exit, vacuum off
        run "$tmp" "$scratch" --ini "$name.ini" "${extra[@]+"${extra[@]}"}" --set vacuum=false
        reap "$tmp"
        if [ "$RC" != 0 ]; then
            reason="vacuum would unlink $risk on the error exit"
            printf '%s.ini\t%s\n' "$name" "$reason" >>"$unrec"
            printf '%s: UNRECORDABLE: %s\n' "$name" "$reason"
            skipped=$((skipped + 1))
            rm -rf "$tmp" "$scratch"
            continue
        fi
    fi

    # Run; when the output shows a cause listed in the header, add its
    # neutraliser and run again.
    need_lm=0
    plugins=()
    while :; do
        args=()
        for p in "${plugins[@]+"${plugins[@]}"}"; do args+=(--plugins "$p"); done
        args+=(--ini "$name.ini" "${extra[@]+"${extra[@]}"}")
        [ $need_lm = 1 ] && args+=(--set log-master=false)
        run "$tmp" "$scratch" "${args[@]}"
        reap "$tmp"
        normalise "$tmp" <"$scratch/stderr" >"$scratch/stderr.n"
        extract_block <"$scratch/stderr.n" >"$scratch/block"
        errline=$(extract_errline <"$scratch/stderr.n")
        if [ $need_lm = 0 ] && { { [ "$RC" = 0 ] && [ ! -s "$scratch/block" ]; } ||
                grep -q '^unable to find logger ' "$scratch/stderr.n"; }; then
            # the log went to a master that never runs (spec §12.4), or that
            # master needs a logger plugin this uWSGI lacks (ours has it)
            need_lm=1
            continue
        fi
        opt=$(sed -n 's/^\[strict-mode\] unknown config directive: //p' "$scratch/stderr.n" | head -n 1)
        p=
        [ -n "$opt" ] && [ ${#plugins[@]} -lt 5 ] && p=$(embedded_plugin_of "$opt")
        if [ -n "$p" ]; then
            # unknown only because this uWSGI has the plugin as a loadable
            # one; our binary has it built in
            plugins+=("$p")
            continue
        fi
        break
    done

    reason=
    for p in $MISSING_EMBEDDED; do
        case $opt in
            "$p"|"$p"-*) reason="strict mode and option '$opt' of the $p plugin, embedded in standard builds but not installed with the reference" ;;
        esac
    done
    if [ -n "$reason" ]; then
        printf '%s.ini\t%s\n' "$name" "$reason" >>"$unrec"
        printf '%s: UNRECORDABLE: %s\n' "$name" "$reason"
        skipped=$((skipped + 1))
        rm -rf "$tmp" "$scratch"
        continue
    fi
    if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
        printf '%s.ini\t%s\n' "$name" "the reference did not finish within the timeout" >>"$unrec"
        printf '%s: UNRECORDABLE: timeout\n' "$name"
        skipped=$((skipped + 1))
        rm -rf "$tmp" "$scratch"
        continue
    fi
    if [ "$RC" = 0 ] && [ ! -s "$scratch/block" ]; then
        printf '%s.ini\t%s\n' "$name" "no configuration block even with --set log-master=false" >>"$unrec"
        printf '%s: UNRECORDABLE: no block\n' "$name"
        skipped=$((skipped + 1))
        rm -rf "$tmp" "$scratch"
        continue
    fi

    mkdir -p "$out"
    echo "$RC" >"$out/rc"
    cp "$scratch/block" "$out/block"
    extract_load <"$scratch/stderr.n" >"$out/load"
    [ "$RC" != 0 ] && printf '%s\n' "$errline" >"$out/errline"
    if [ ${#plugins[@]} -gt 0 ] || [ $need_lm = 1 ] || [ ${#extra[@]} -gt 0 ]; then
        printf '%s\n' "${args[@]}" >"$out/args"
    fi
    if tr -d '\r' <"$f" | sed 's/%%//g' | grep -q '%k'; then
        echo "ncpus=$(ncpus)" >"$out/requires"
    fi
    printf '%s: rc=%s block=%s%s\n' "$name" "$RC" "$(wc -l <"$out/block")" \
        "$([ -f "$out/args" ] && printf ' args: %s' "$(tr '\n' ' ' <"$out/args")")"
    recorded=$((recorded + 1))
    rm -rf "$tmp" "$scratch"
done

rm -rf "$helpdir"
# keep the table sorted by file name
{ head -n 1 "$unrec"; tail -n +2 "$unrec" | LC_ALL=C sort; } >"$unrec.new" && mv "$unrec.new" "$unrec"
total=$((recorded + skipped))
echo "recorded $recorded of $total files; $skipped unrecordable (see $unrec)"
