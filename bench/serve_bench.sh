#!/bin/sh
# Serving: charlm-server vs a Flask + PyTorch reference of the same model, same run.
#
#   bench/serve_bench.sh [MODEL_DIR | CORPUS]     (default: the shipped model, artefacts/)
#
# Given a text file instead of a model folder, it first trains a default-size model on it
# (charlm-train, TRAIN_STEPS steps, default 300: serving speed depends on the model's
# shapes, not on how well it was trained) into its temporary folder.
# Both servers load the model (vocab.json + model.safetensors) and listen on free loopback
# ports; they are measured one after the other, never at the same time. For each:
#   - idle RSS (VmRSS once /health answers, before any generation);
#   - single-stream chars/s: SINGLE sequential requests of max_tokens 200, one at a time;
#   - wrk (bench/generate.lua: POST /generate, max_tokens 200, temperature 0.8, a seed per
#     request) for DURATION at 1, 8 and 32 connections: requests/s, p50 and p99 latency;
#   - loaded RSS: VmHWM (peak resident) after all of it.
# Environment: SERVER (charlm-server; default build/charlm-server, else built into
# build-bench/), PYTHON (/usr/bin/python3, with python3-torch and python3-flask:
# scripts/install-deps.sh bench), DURATION (10s), CONNS ("1 8 32"), SINGLE (20),
# SERVER_ARGS (extra charlm-server flags), TRAIN_STEPS, TRAIN (charlm-train; default beside
# SERVER).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARG=${1:-$ROOT/artefacts}
[ -e "$ARG" ] || { echo "serve_bench: $ARG: no such model folder or corpus" >&2; exit 2; }
TRAIN_STEPS=${TRAIN_STEPS:-300}
PYTHON=${PYTHON:-/usr/bin/python3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-1 8 32}
SINGLE=${SINGLE:-20}
SERVER_ARGS=${SERVER_ARGS:-}
SERVER=${SERVER:-$ROOT/build/charlm-server}
if [ ! -x "$SERVER" ]; then
    SERVER=$ROOT/build-bench/charlm-server
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" -j2 --target charlm-server charlm-train >/dev/null
fi
TRAIN=${TRAIN:-$(dirname "$SERVER")/charlm-train}
command -v wrk >/dev/null || { echo "serve_bench: wrk is not installed (scripts/install-deps.sh bench)" >&2; exit 1; }
"$PYTHON" -c 'import torch, flask' 2>/dev/null ||
    { echo "serve_bench: $PYTHON cannot import torch and flask (scripts/install-deps.sh bench)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/serve_bench.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -d "$ARG" ]; then
    MODEL=$(cd "$ARG" && pwd)
else
    [ -x "$TRAIN" ] || { echo "serve_bench: no charlm-train at $TRAIN to train on $ARG" >&2; exit 1; }
    echo "serve_bench: training a default-size model on $ARG ($TRAIN_STEPS steps) ..." >&2
    MODEL=$WORK/model
    "$TRAIN" train --corpus "$ARG" --out "$MODEL" --steps "$TRAIN_STEPS" \
        --eval-every "$TRAIN_STEPS" >"$WORK/train.out" 2>"$WORK/train.err" ||
        { cat "$WORK/train.err" >&2; exit 1; }
fi

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_health() { # port pid
    i=0
    while [ $i -lt 300 ]; do
        kill -0 "$2" 2>/dev/null || return 1
        if "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=1)' "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

rss_kb() { # pid field
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# One line of JSON: sequential requests, chars generated per second of wall time.
single_stream() { # port
    "$PYTHON" - "$1" "$SINGLE" <<'EOF'
import http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
chars, t0 = 0, time.perf_counter()
for i in range(n):
    body = json.dumps({"prompt": "It was on a dreary night of November", "max_tokens": 200,
                       "temperature": 0.8, "seed": 1000 + i})
    conn.request("POST", "/generate", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"single stream: HTTP {r.status}: {data[:200]!r}")
    chars += json.loads(data)["tokens"]
dt = time.perf_counter() - t0
print(json.dumps({"chars_per_s": chars / dt, "ms_per_request": dt / n * 1e3}))
EOF
}

measure() { # name
    name=$1
    port=$(cat "$WORK/port")
    wait_health "$port" "$PID" || { echo "serve_bench: $name did not come up" >&2; cat "$WORK/$name.log" >&2; exit 1; }
    echo "$name idle_rss_kb $(rss_kb "$PID" VmRSS)" >>"$WORK/results"
    echo "$name: single stream ($SINGLE requests) ..." >&2
    echo "$name single $(single_stream "$port")" >>"$WORK/results"
    for c in $CONNS; do
        t=2
        [ "$c" -ge 2 ] || t=1
        echo "$name: wrk -c$c -d$DURATION ..." >&2
        wrk -t$t -c"$c" -d"$DURATION" --timeout 60s --latency -s "$ROOT/bench/generate.lua" \
            "http://127.0.0.1:$port/generate" >"$WORK/wrk.out" 2>&1 ||
            { cat "$WORK/wrk.out" >&2; exit 1; }
        echo "$name wrk$c $(sed -n 's/^WRKJSON //p' "$WORK/wrk.out")" >>"$WORK/results"
    done
    echo "$name loaded_rss_kb $(rss_kb "$PID" VmHWM)" >>"$WORK/results"
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}

free_port >"$WORK/port"
# shellcheck disable=SC2086
"$SERVER" --model "$MODEL" --host 127.0.0.1 --port "$(cat "$WORK/port")" $SERVER_ARGS \
    2>"$WORK/charlm.log" &
PID=$!
measure charlm

free_port >"$WORK/port"
"$PYTHON" "$ROOT/bench/flask_ref.py" --model "$MODEL" --host 127.0.0.1 \
    --port "$(cat "$WORK/port")" >"$WORK/flask.log" 2>&1 &
PID=$!
measure flask

"$PYTHON" - "$WORK/results" "$DURATION" <<'EOF'
import json, sys
r = {}
for line in open(sys.argv[1]):
    name, key, value = line.rstrip("\n").split(" ", 2)
    r.setdefault(name, {})[key] = json.loads(value)
c, f = r["charlm"], r["flask"]
print(f"serving benchmark: POST /generate, max_tokens 200, temperature 0.8; wrk {sys.argv[2]} "
      "per row, loopback")
print(f"{'':<24}{'charlm':>14}{'flask+torch':>14}{'ratio':>9}")
# A side that completed no request has no rate or latency to compare: it says so instead
# of showing 0 and a ratio of nan.
def row(label, a, b, fmt, better_low=False):
    text = lambda v: "none" if v is None else fmt.format(v)
    ratio = f"{(b / a if better_low else a / b):>8.1f}x" if a and b else f"{'-':>9}"
    print(f"{label:<24}{text(a):>14}{text(b):>14}{ratio}")
row("single stream chars/s", c["single"]["chars_per_s"], f["single"]["chars_per_s"], "{:.0f}")
for k in sorted((k for k in c if k.startswith("wrk")), key=lambda k: int(k[3:])):
    n = k[3:]
    row(f"req/s @{n} conn", c[k]["rps"] or None, f[k]["rps"] or None, "{:.1f}")
    row(f"  p50 ms @{n}", c[k]["p50_ms"], f[k]["p50_ms"], "{:.1f}", better_low=True)
    row(f"  p99 ms @{n}", c[k]["p99_ms"], f[k]["p99_ms"], "{:.1f}", better_low=True)
    for name, x in (("charlm", c[k]), ("flask+torch", f[k])):
        if not x["requests"]:
            print(f"  ({name} completed no request in {x['duration_s']:.0f} s at {n} "
                  f"connections: {x['errors']} socket errors, {x.get('timeouts', 0)} of them "
                  f"timeouts)")
        elif x["non2xx"] or x["errors"]:
            print(f"  ({name}: {x['non2xx']} non-2xx, {x['errors']} socket errors)")
row("idle RSS MB", c["idle_rss_kb"] / 1024, f["idle_rss_kb"] / 1024, "{:.1f}", better_low=True)
row("loaded RSS (peak) MB", c["loaded_rss_kb"] / 1024, f["loaded_rss_kb"] / 1024, "{:.1f}",
    better_low=True)
print("ratio = how many times better charlm is (higher throughput, lower latency/memory)")
EOF
