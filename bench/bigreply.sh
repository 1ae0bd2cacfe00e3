#!/bin/sh
# The largest replies a request can ask for, and what they cost everyone else.
#
#   bench/bigreply.sh [MODEL_DIR]      (default: the shipped model, artefacts/)
#
# A maximal chat request is 170 bytes: n 16, max_tokens 2000, logprobs with top_logprobs
# 20 (or the vocabulary's size when smaller); its reply is tens of MB of JSON. Against one
# charlm-server this prints:
#   1. the peak resident set while one such reply is produced and read (VmHWM, after
#      resetting it through /proc/PID/clear_refs), and VmRSS before and after it;
#   2. /health latency p50 / p99 / max (curl's time_total, a poll every 20 ms) while four
#      such replies are produced and read at once, and VmRSS after them;
#   3. four clients reading such replies at 256 KB/s (curl --limit-rate) with
#      --max-concurrent 64, which their 4 x 16 generations fill: for SLOW_SECONDS after
#      their generations are done, a /generate (max_tokens 20) every 100 ms, counted by
#      status, and /metrics' charlm_replies_waiting and charlm_reply_bytes_waiting.
#
# Environment: BUILD (build dir, default build/, configured as Release if it is not yet),
# SLOW_SECONDS (5), SERVER_ARGS (extra charlm-server flags).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "${1:-$ROOT/artefacts}" && pwd)
SLOW_SECONDS=${SLOW_SECONDS:-5}
SERVER_ARGS=${SERVER_ARGS:-}

NAME=bigreply
. "$ROOT/bench/server_build.sh"

WORK=$(mktemp -d /tmp/bigreply.XXXXXX)
PID=
CLIENTS=
cleanup() {
    for p in $CLIENTS; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# shellcheck disable=SC2086
"$BUILD/charlm-server" --model "$MODEL" --host 127.0.0.1 --port 0 --max-concurrent 64 \
    --idle-timeout 600 $SERVER_ARGS 2>"$WORK/server.log" &
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
    echo "bigreply: charlm-server did not start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi
URL=http://127.0.0.1:$PORT

vocab=$(curl -sf "$URL/model" | sed -n 's/.*"vocab_size":\([0-9]*\).*/\1/p')
top=20
[ "${vocab:-0}" -lt 20 ] && top=$vocab
big_body() {
    printf '{"messages":[{"role":"user","content":"the cat"}],"n":16,"max_tokens":2000,'
    printf '"logprobs":true,"top_logprobs":%s,"seed":%s}' "$top" "$1"
}
kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$PID/status"; }
mb() { echo "$(( $1 / 1024 )) MB"; }
metric() { curl -sf "$URL/metrics" | sed -n "s/^$1 //p"; }
# big N: a maximal chat request, its reply counted and dropped; prints its size.
big() {
    big_body "$1" | curl -sf -o /dev/null -w '%{size_download}\n' -H 'Content-Type: application/json' \
        --data-binary @- ${2:+--limit-rate "$2"} "$URL/v1/chat/completions"
}
echo "model $MODEL: vocab $vocab; requests n 16, max_tokens 2000, top_logprobs $top"

# 1. One worst request.
before=$(kb VmRSS)
echo 5 >"/proc/$PID/clear_refs"
bytes=$(big 1)
echo "one reply of $bytes bytes: peak RSS $(mb "$(kb VmHWM)") (before $(mb "$before"), after $(mb "$(kb VmRSS)"))"

# 2. Four at once, /health polled meanwhile.
: >"$WORK/health"
CLIENTS=
for s in 2 3 4 5; do
    big "$s" >"$WORK/big$s" &
    CLIENTS="$CLIENTS $!"
done
running() {
    for p in $CLIENTS; do kill -0 "$p" 2>/dev/null && return 0; done
    return 1
}
while running; do
    curl -s -o /dev/null -w '%{time_total}\n' "$URL/health" >>"$WORK/health" || echo 99 >>"$WORK/health"
    sleep 0.02
done
# shellcheck disable=SC2086
wait $CLIENTS
sort -n "$WORK/health" >"$WORK/health.sorted"
n=$(wc -l <"$WORK/health.sorted")
at() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$WORK/health.sorted"; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f ms", s * 1000 }'; }
echo "four replies at once ($(cat "$WORK"/big? | tr '\n' ' ')bytes): /health p50 $(ms "$(at 50)")," \
    "p99 $(ms "$(at 99)"), max $(ms "$(tail -n 1 "$WORK/health.sorted")") over $n polls;" \
    "RSS after $(mb "$(kb VmRSS)")"

# 3. Four slow readers hold replies; is anyone else answered?
CLIENTS=
for s in 6 7 8 9; do
    big "$s" 256k >/dev/null 2>&1 &
    CLIENTS="$CLIENTS $!"
done
i=0
while [ $i -lt 600 ] && [ "$(metric charlm_replies_waiting)" != 4 ]; do
    # A server without the series (an older build): give the generations 15 s.
    [ -z "$(metric charlm_replies_waiting)" ] && [ $i -ge 150 ] && break
    sleep 0.1
    i=$((i + 1))
done
echo "four readers at 256 KB/s: their generations done after $(( i / 10 )).$(( i % 10 )) s;" \
    "replies waiting $(metric charlm_replies_waiting), holding $(metric charlm_reply_bytes_waiting) bytes;" \
    "generations in flight $(metric charlm_generations_in_flight)"
: >"$WORK/normal"
end=$(( $(date +%s) + SLOW_SECONDS ))
while [ "$(date +%s)" -lt "$end" ]; do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
        -d '{"prompt":"the ","max_tokens":20}' "$URL/generate" >>"$WORK/normal"
    sleep 0.1
done
ok=$(grep -c '^200 ' "$WORK/normal" || true)
busy=$(grep -c '^503 ' "$WORK/normal" || true)
worst=$(sort -k2 -n "$WORK/normal" | tail -n 1 | cut -d' ' -f2)
echo "meanwhile, over ${SLOW_SECONDS} s: $(wc -l <"$WORK/normal") requests, $ok answered 200," \
    "$busy refused 503, slowest $(ms "$worst")"
