#!/usr/bin/env bash
# Re-record the differential config fixtures from the reference uWSGI.
#
# usage: compat-fixtures/record.sh [uwsgi-binary] [case...]
#
# For every case directory under compat-fixtures/config/ (or only the named
# ones), run the reference binary on the case's inputs in a fresh temp dir and
# write what it did to <case>/expected/{rc,stdout,block,load,errline,grep}.
# The replay test (tests/it/compat.rs) runs our binary the same way and
# compares. See compat-fixtures/README.md for the case format.
#
# The reference is uWSGI 2.0.21 as packaged by Debian (`uwsgi-core` 2.0.21,
# version string `2.0.21-debian`), with the python3 plugin. Install it with:
#
#     apt-get install -y uwsgi-core uwsgi-plugin-python3
#
# The script refuses to record with a binary whose `--version` is not 2.0.21*.
# Nothing here needs network access or root; everything runs in a temp dir
# made with mktemp under /tmp, under `timeout 10`, with a scrubbed environment:
#
#     env -i PATH="$PATH" HOME=<tmp> LANG=C <case env> timeout 10 BIN ARGS... <stdin
set -u

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=compat-fixtures/lib.sh
. "$here/lib.sh"

bin=${1:-uwsgi}
[ $# -gt 0 ] && shift
check_reference "$bin" || exit 2

if [ $# -gt 0 ]; then
    cases=("$@")
else
    cases=()
    for d in "$here"/config/*/; do
        cases+=("$(basename "$d")")
    done
fi

failed=0
for name in "${cases[@]}"; do
    dir=$here/config/$name
    if [ ! -f "$dir/args" ]; then
        echo "record.sh: no such case: $name" >&2
        failed=1
        continue
    fi
    mode=show
    [ -f "$dir/mode" ] && mode=$(tr -d ' \n' <"$dir/mode")
    case $mode in show|get|raw) ;; *) echo "record.sh: $name: bad mode '$mode'" >&2; failed=1; continue ;; esac

    tmp=$(make_tmp)
    [ -d "$dir/files" ] && cp -R "$dir/files/." "$tmp/"
    if [ -f "$dir/setup.sh" ]; then
        (cd "$tmp" && sh "$dir/setup.sh") || { echo "record.sh: $name: setup.sh failed" >&2; failed=1; rm -rf "$tmp"; continue; }
    fi

    read_lines "$dir/args" "$tmp"; args=("${LINES_OUT[@]}")
    envs=()
    if [ -f "$dir/env" ]; then read_env "$dir/env" "$tmp"; envs=("${LINES_OUT[@]}"); fi
    [ "$mode" = show ] && args+=(--show-config --privileged-binary-patch true)
    stdin=/dev/null
    [ -f "$dir/stdin" ] && stdin=$dir/stdin

    out=$dir/expected
    rm -rf "$out"
    mkdir -p "$out"
    scratch=$(mktemp -d /tmp/ruwsgi-record.XXXXXX)
    run_reference "$tmp" "$stdin" "$scratch/stdout" "$scratch/stderr" "$bin" "${envs[@]+"${envs[@]}"}" -- "${args[@]+"${args[@]}"}"
    rc=$RUN_RC
    echo "$rc" >"$out/rc"
    normalise "$tmp" <"$scratch/stdout" >"$out/stdout"
    normalise "$tmp" <"$scratch/stderr" >"$scratch/stderr.n"
    extract_block <"$scratch/stderr.n" >"$out/block"
    extract_load <"$scratch/stderr.n" >"$out/load"
    if [ "$rc" != 0 ]; then
        extract_errline <"$scratch/stderr.n" >"$out/errline"
    fi
    if [ -f "$dir/grep" ]; then
        P=$(head -n 1 "$dir/grep") awk 'index($0, ENVIRON["P"]) == 1' <"$scratch/stderr.n" | strip_location >"$out/grep"
    fi
    printf '%-40s rc=%s block=%s load=%s\n' "$name" "$rc" "$(wc -l <"$out/block")" "$(wc -l <"$out/load")"
    rm -rf "$tmp" "$scratch"
done
exit $failed
