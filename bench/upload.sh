#!/bin/sh
# What an upload to POST /v1/files costs everyone else.
#
#   bench/upload.sh [MODEL_DIR]      (default: the shipped model, artefacts/)
#
# Against one charlm-server with --training-dir (a temp folder), UPLOADS times (3): a text
# of MB megabytes (64, that is 64,000,000 bytes) uploaded with curl -F over loopback while
# /health is polled every 20 ms (curl's time_total); prints /health's median and max during
# each upload and over all of them, each upload's status and time, and the server's peak
# resident set over all of them (VmHWM) with VmRSS before the first.
#
# Environment: BUILD (build dir, default build/, configured as Release if it is not yet),
# MB (64), UPLOADS (3), SERVER_ARGS (extra charlm-server flags).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "${1:-$ROOT/artefacts}" && pwd)
MB=${MB:-64}
UPLOADS=${UPLOADS:-3}
SERVER_ARGS=${SERVER_ARGS:-}

NAME=upload
. "$ROOT/bench/server_build.sh"

WORK=$(mktemp -d /tmp/upload.XXXXXX)
PID=
UP=
cleanup() {
    [ -n "$UP" ] && kill "$UP" 2>/dev/null || true
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The text: lines of the shipped corpus's alphabet, MB * 1,000,000 bytes.
awk -v n=$((MB * 1000000)) 'BEGIN {
    line = "It was on a dreary night of November that I beheld the accomplishment of my toils.\n";
    for (s = line; length(s) < 1000000; s = s s) ;
    s = substr(s, 1, 1000000);
    for (i = 0; i < n / 1000000; i++) printf "%s", s;
}' >"$WORK/text.txt"

# shellcheck disable=SC2086
"$BUILD/charlm-server" --model "$MODEL" --host 127.0.0.1 --port 0 --training-dir "$WORK/train" \
    $SERVER_ARGS 2>"$WORK/server.log" &
PID=$!
PORT=
i=0
while [ $i -lt 600 ]; do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' \
        "$WORK/server.log" | head -n 1)
    [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    kill -0 "$PID" 2>/dev/null || break
    PORT=
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$PORT" ]; then
    echo "upload: charlm-server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi
URL=http://127.0.0.1:$PORT
kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$PID/status"; }
mb() { echo "$(( $1 / 1024 )) MB"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }

echo "uploads of $MB MB; RSS before $(mb "$(kb VmRSS)")"
echo 5 >"/proc/$PID/clear_refs"
: >"$WORK/all"
u=1
while [ $u -le "$UPLOADS" ]; do
    : >"$WORK/health"
    curl -s -o "$WORK/reply" -w '%{http_code} %{time_total}\n' -F purpose=fine-tune \
        -F "file=@$WORK/text.txt" "$URL/v1/files" >"$WORK/up" &
    UP=$!
    while kill -0 "$UP" 2>/dev/null; do
        curl -s -o /dev/null -w '%{time_total}\n' "$URL/health" >>"$WORK/health" ||
            echo 99 >>"$WORK/health"
        sleep 0.02
    done
    wait "$UP" || true
    UP=
    cat "$WORK/health" >>"$WORK/all"
    sort -n "$WORK/health" >"$WORK/health.sorted"
    n=$(wc -l <"$WORK/health.sorted")
    echo "upload $u: $(cat "$WORK/up") s; /health median $(ms "$(sed -n "$(( (n + 1) / 2 ))p" \
        "$WORK/health.sorted")"), max $(ms "$(tail -n 1 "$WORK/health.sorted")") over $n polls"
    grep -q '"id"' "$WORK/reply" || { echo "upload: refused: $(cat "$WORK/reply")" >&2; exit 1; }
    u=$((u + 1))
done
sort -n "$WORK/all" >"$WORK/all.sorted"
n=$(wc -l <"$WORK/all.sorted")
echo "all uploads: /health median $(ms "$(sed -n "$(( (n + 1) / 2 ))p" "$WORK/all.sorted")"), max" \
    "$(ms "$(tail -n 1 "$WORK/all.sorted")") over $n polls"
echo "peak RSS $(mb "$(kb VmHWM)"), RSS after $(mb "$(kb VmRSS)")"
