#!/bin/sh
# What an extra model costs in memory: charlm-server's resident set with 1 and with 4 models.
#
#   bench/models_rss.sh [MODEL_DIR]      (default: the shipped model, artefacts/)
#
# Copies MODEL_DIR's files into four folders m1 … m4 of a temp dir (copies, not links: each
# is a file of its own in the page cache, as four different models would be), then starts
# charlm-server on m1 alone (--model), stops it, and starts it on all four (--models). For
# each server it prints VmRSS, RssAnon and RssFile from /proc/PID/status once /health
# answers, and again after GENS generations (max_tokens 200, a seed each) on every model.
# Then the cost of each extra model, (4 models - 1 model) / 3, beside the size of
# model.safetensors, and what four servers of one model each would hold instead.
#
# Environment: GENS (5), SERVER_ARGS (extra charlm-server flags), BUILD (build dir, default
# build/, configured as Release if it is not yet).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "${1:-$ROOT/artefacts}" && pwd)
GENS=${GENS:-5}
SERVER_ARGS=${SERVER_ARGS:-}

NAME=models_rss
. "$ROOT/bench/server_build.sh"
if [ ! -f "$MODEL/model.safetensors" ] || [ ! -f "$MODEL/vocab.json" ]; then
    echo "models_rss: $MODEL holds no model.safetensors and vocab.json" >&2
    exit 1
fi

WORK=$(mktemp -d /tmp/models_rss.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir "$WORK/models"
for m in m1 m2 m3 m4; do
    mkdir "$WORK/models/$m"
    for f in model.safetensors vocab.json train_log.jsonl; do
        [ -f "$MODEL/$f" ] && cp "$MODEL/$f" "$WORK/models/$m/"
    done
done
FILE_KB=$(( $(stat -c %s "$MODEL/model.safetensors") / 1024 ))

echo "model $MODEL: model.safetensors $FILE_KB kB; $GENS generations per model;" \
    "SERVER_ARGS '${SERVER_ARGS}'"

# Starts charlm-server with the given flags; sets PID and PORT.
start_server() {
    : >"$WORK/server.log"
    # shellcheck disable=SC2086
    "$BUILD/charlm-server" --host 127.0.0.1 --port 0 $SERVER_ARGS "$@" 2>"$WORK/server.log" &
    PID=$!
    PORT=
    i=0
    while [ $i -lt 600 ]; do
        PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$WORK/server.log" | head -n 1)
        [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    echo "models_rss: charlm-server $* did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
}

stop_server() {
    kill "$PID"
    wait "$PID" || true
    PID=
}

# "VmRSS RssAnon RssFile" of the server, in kB.
rss() {
    awk '/^(VmRSS|RssAnon|RssFile):/ { v[$1] = $2 }
         END { print v["VmRSS:"], v["RssAnon:"], v["RssFile:"] }' "/proc/$PID/status"
}

generate() { # model id, seed
    code=$(curl -s -o "$WORK/reply" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"prompt\": \"The \", \"max_tokens\": 200, \"seed\": $2, \"model\": \"$1\"}" \
        "http://127.0.0.1:$PORT/generate")
    [ "$code" = 200 ] || {
        echo "models_rss: POST /generate (model $1): $code $(cat "$WORK/reply")" >&2
        exit 1
    }
}

row() { # label, "VmRSS RssAnon RssFile"
    echo "$2" | awk -v l="$1" '{ printf "%-28s %9d %9d %9d\n", l, $1, $2, $3 }'
}

# Measures one server over the given model ids; sets IDLE and LOADED.
measure() {
    IDLE=$(rss)
    for id in "$@"; do
        s=1
        while [ $s -le "$GENS" ]; do generate "$id" "$s"; s=$((s + 1)); done
    done
    LOADED=$(rss)
}

printf '%-28s %9s %9s %9s\n' "" "VmRSS kB" "RssAnon" "RssFile"
start_server --model "$WORK/models/m1"
measure m1
stop_server
IDLE1=$IDLE LOADED1=$LOADED
row "1 model, after startup" "$IDLE1"
row "1 model, after generations" "$LOADED1"

start_server --models "$WORK/models"
measure m1 m2 m3 m4
stop_server
IDLE4=$IDLE LOADED4=$LOADED
row "4 models, after startup" "$IDLE4"
row "4 models, after generations" "$LOADED4"

# Per extra model: the difference between the two servers over the 3 models added.
# shellcheck disable=SC2086
set -- $IDLE1 $IDLE4
echo "each extra model, after startup:     VmRSS $((($4 - $1) / 3)) kB," \
    "RssAnon $((($5 - $2) / 3)) kB, RssFile $((($6 - $3) / 3)) kB (model.safetensors $FILE_KB kB)"
# shellcheck disable=SC2086
set -- $LOADED1 $LOADED4
echo "each extra model, after generations: VmRSS $((($4 - $1) / 3)) kB," \
    "RssAnon $((($5 - $2) / 3)) kB, RssFile $((($6 - $3) / 3)) kB (model.safetensors $FILE_KB kB)"
echo "four servers of one model each, after generations: VmRSS $((4 * $1)) kB;" \
    "one server of four models: $4 kB"
