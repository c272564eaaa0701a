# Shared helpers for record.sh and record-corpus.sh (bash, sourced).
# The replay side (tests/it/util.rs) implements the same rules in Rust; keep
# the two in step (README.md, "Normalisation").

# check_reference BIN: refuse anything but uWSGI 2.0.21.
check_reference() {
    local v
    v=$(env -i PATH="$PATH" LANG=C "$1" --version </dev/null 2>/dev/null)
    case $v in
        2.0.21*) return 0 ;;
    esac
    echo "refusing to record: '$1 --version' printed '${v:-nothing}', the reference must be uWSGI 2.0.21" >&2
    echo "install it with: apt-get install -y uwsgi-core uwsgi-plugin-python3" >&2
    return 1
}

# make_tmp: a fresh temp dir; its name is distinctive so that its basename
# can be normalised too.
make_tmp() {
    mktemp -d /tmp/ruwsgi-compat.XXXXXX
}

# read_lines FILE TMP: FILE's lines (an empty line is an empty string), with
# @TMP@ replaced by TMP, into the array LINES_OUT.
read_lines() {
    local l
    LINES_OUT=()
    while IFS= read -r l || [ -n "$l" ]; do
        LINES_OUT+=("${l//@TMP@/$2}")
    done <"$1"
}

# read_env FILE TMP: like read_lines, skipping empty lines, sorted by
# variable name (bytewise), which is the order a Rust Command passes them.
read_env() {
    local l
    LINES_OUT=()
    while IFS= read -r l; do
        [ -n "$l" ] && LINES_OUT+=("${l//@TMP@/$2}")
    done < <(grep -v '^$' "$1" | LC_ALL=C sort -s -t= -k1,1)
}

# run_reference TMP STDIN OUT ERR BIN [ENV...] -- [ARG...]
# Runs BIN in TMP with the scrubbed environment; exit status in RUN_RC.
run_reference() {
    local tmp=$1 stdin=$2 out=$3 err=$4 bin=$5
    shift 5
    local envs=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    (cd "$tmp" && exec env -i PATH="$PATH" HOME="$tmp" LANG=C "${envs[@]+"${envs[@]}"}" \
        timeout -k 2 10 "$bin" "$@" <"$stdin" >"$out" 2>"$err")
    RUN_RC=$?
}

# sed_escape STR: STR as a literal sed regex.
sed_escape() {
    printf '%s' "$1" | sed 's/[][\.*^$/|]/\\&/g'
}

# normalise TMP < in > out: the temp dir's real path, its path as created,
# then its bare name, become @TMP@ / @TMP@ / @TMPNAME@.
normalise() {
    local tmp=$1 real base
    real=$(cd "$tmp" && pwd -P)
    base=$(basename "$tmp")
    sed -e "s|$(sed_escape "$real")|@TMP@|g" \
        -e "s|$(sed_escape "$tmp")|@TMP@|g" \
        -e "s|$(sed_escape "$base")|@TMPNAME@|g"
}

# extract_block: from the line ";uWSGI instance configuration" to the first
# following line that ends with ";end of configuration" (a log-date prefix
# may precede it), inclusive.
extract_block() {
    sed -n '/^;uWSGI instance configuration$/,/;end of configuration$/p'
}

# extract_load: the loader lines.
extract_load() {
    grep -E '^\[uWSGI\] getting INI|^\*\*\* WARNING: Can.t find section' || true
}

# strip_location: drop a trailing " [core/FILE line N]" (a C source location).
strip_location() {
    sed 's/ \[core\/[^]]*\]$//'
}

# extract_errline: the last non-blank line, without its source location.
extract_errline() {
    grep '[^[:space:]]' | tail -n 1 | strip_location
}
