#!/usr/bin/env bash
# Records the option reference used by src/config/options.rs tests:
#   dump-options.txt  every option name, in table order, as printed by
#                     `uwsgi --plugins python3,http,corerouter --dump-options`
#   shorts.txt        "LETTER NAME" for each option that shows a short
#                     letter in `--help` (names and letters only, no help text)
# Reference: uWSGI 2.0.21 (Debian build). Usage: record.sh [path-to-uwsgi]
set -euo pipefail
UWSGI=${1:-uwsgi}
here=$(cd "$(dirname "$0")" && pwd)
plugins=python3,http,corerouter
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$UWSGI" --version | grep -q '^2\.0\.21' || echo "warning: expected uWSGI 2.0.21" >&2
"$UWSGI" --plugins "$plugins" --dump-options </dev/null 2>/dev/null >"$here/dump-options.txt"
"$UWSGI" --plugins "$plugins" --help </dev/null 2>/dev/null |
    sed -nE 's/^ +-(.)\|--([^ ]+).*/\1 \2/p' >"$here/shorts.txt"
wc -l "$here/dump-options.txt" "$here/shorts.txt"
