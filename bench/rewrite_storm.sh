#!/bin/sh
# A served model file rewritten in place while the server reloads it: plain `cp` over
# model.safetensors (which truncates it, then writes it) COPIES times, while one loop POSTs
# /admin/reload and another sends SIGHUP. The server must stay up, answer every reload, and
# end serving the file as it is at the end.
#
#   bench/rewrite_storm.sh [MODEL_DIR]      (default: the shipped model, artefacts/)
#
# Prints: whether the server is alive after the storm (and its exit status if not), the
# reload answers by HTTP status, the swaps and refusals it logged, /health at the end, and
# VmHWM / VmRSS from /proc/PID/status.
#
# Environment: COPIES (200), BUILD (build dir, default build/, configured as Release if
# it is not yet).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "${1:-$ROOT/artefacts}" && pwd)
COPIES=${COPIES:-200}

NAME=rewrite_storm
. "$ROOT/bench/server_build.sh"

WORK=$(mktemp -d /tmp/rewrite_storm.XXXXXX)
PID=
LOOPS=
cleanup() {
    for p in $LOOPS; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$WORK/served"
cp "$MODEL/model.safetensors" "$MODEL/vocab.json" "$WORK/served/"
[ -f "$MODEL/train_log.jsonl" ] && cp "$MODEL/train_log.jsonl" "$WORK/served/"

echo "model $MODEL ($(stat -c %s "$MODEL/model.safetensors") bytes), $COPIES copies"

"$BUILD/charlm-server" --model "$WORK/served" --port 0 2>"$WORK/log" &
PID=$!
i=0
until PORT=$(sed -n 's|.*listening on http://[^:]*:\([0-9]*\).*|\1|p' "$WORK/log") &&
    [ -n "$PORT" ]; do
    i=$((i + 1))
    [ $i -lt 200 ] && kill -0 "$PID" 2>/dev/null || { cat "$WORK/log" >&2; exit 1; }
    sleep 0.05
done
URL=http://127.0.0.1:$PORT

(while :; do
    curl -s -o /dev/null -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        -d '{}' "$URL/admin/reload" >>"$WORK/codes" || echo 000 >>"$WORK/codes"
done) &
LOOPS=$!
(while kill -HUP "$PID" 2>/dev/null; do sleep 0.01; done) &
LOOPS="$LOOPS $!"

n=0
while [ $n -lt "$COPIES" ] && kill -0 "$PID" 2>/dev/null; do
    cp "$MODEL/model.safetensors" "$WORK/served/model.safetensors"
    n=$((n + 1))
done
for p in $LOOPS; do kill "$p" 2>/dev/null || true; done
LOOPS=
sleep 0.5

if kill -0 "$PID" 2>/dev/null; then
    alive=yes
else
    wait "$PID" && rc=0 || rc=$?
    alive="no (exit status $rc)"
    PID=
fi
echo "copies done: $n of $COPIES; server alive: $alive"
echo "reload answers by status: $(sort "$WORK/codes" 2>/dev/null | uniq -c | awk '{printf "%s %s; ", $2, $1}')"
echo "logged: $(grep -c 'reload: .*now step' "$WORK/log" || true) swaps," \
    "$(grep -c 'still serving the previous model' "$WORK/log" || true) refusals"
if [ -n "$PID" ]; then
    echo "final reload: $(curl -s -X POST -H 'Content-Type: application/json' -d '{}' "$URL/admin/reload")"
    echo "/health: $(curl -s -o /dev/null -w '%{http_code}' "$URL/health")"
    grep -E '^Vm(HWM|RSS)' "/proc/$PID/status" | tr -s ' \t' ' ' | tr '\n' ';'
    echo
fi
