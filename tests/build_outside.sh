#!/bin/sh
# The suite must not depend on where the build folder is (cmake -S . -B /elsewhere is the
# usual practice). ctest runs this: it configures the source tree into a temp folder
# outside it, builds the server, the trainer its --training-dir runs, and the suite that
# fetches the page (test_server_auth), and runs that suite there.
#
#   tests/build_outside.sh SOURCE_DIR CMAKE CTEST GENERATOR C_COMPILER
set -eu
src=$1 cmake=$2 ctest=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/charlm-outside.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
case "$tmp/" in
"$src"/*)
    echo "build_outside.sh: $tmp is inside the source tree; set TMPDIR to a folder outside it" >&2
    exit 1
    ;;
esac
log=$tmp/build.log
if ! { "$cmake" -S "$src" -B "$tmp/build" -G "$4" -DCMAKE_C_COMPILER="$5" \
    -DCMAKE_BUILD_TYPE=Release && "$cmake" --build "$tmp/build" --target charlm-server charlm-train \
    test_server_auth; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
fi
cd "$tmp/build"
"$ctest" -R '^test_server_auth$' --no-tests=error --output-on-failure
