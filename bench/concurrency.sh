#!/bin/sh
# Decode at concurrency against its ceiling, and time to first char for long prompts.
#
#   bench/concurrency.sh [MODEL_DIR]      (default: the shipped model, artefacts/)
#
# 1. decode_ceiling on MODEL_DIR: the chars/s ceiling of a decode step at each batch size
#    (the faster of OpenBLAS sgemm and infer_step, the batch split over the server's
#    workers), the memory bandwidth and the single-stream bound it gives: the detailed
#    table.
# 2. charlm-server (default prefill) on a free loopback port: streamclient at each
#    concurrency (POST /generate, stream, the 36-char default prompt, max_tokens
#    MAX_TOKENS, temperature 0.8, a seed per request) for DURATION seconds, REPS times:
#    aggregate chars/s, rows/s (prompt chars + generated chars) and p50/p99 request
#    latency. Right before each of those runs, with the server started and idle, a short
#    decode_ceiling (--reps 5 --rep-ms 100) at that batch alone gives that run's ceiling: this machine's
#    speed drifts by tens of percent from minute to minute, so a run is compared with a
#    ceiling measured seconds before it, not minutes. The fraction of the ceiling is
#    computed per run; the table shows the medians and every run's pair. A long
#    MAX_TOKENS makes it a decode benchmark: generated chars are most of the rows the
#    server steps (the ceiling counts rows, chars/s counts only generated chars).
#    Then time to first char (max_tokens 1) for each of TTFC_PROMPTS' prompt lengths
#    alone, and for each of LOADED_PROMPTS' while 32 streams run, with the largest gap
#    those streams saw between chunks while it waited.
# 3. The same time to first char with char-by-char prefill ("$PREFILL_FLAG 1"), on a
#    second server started after the first has stopped; skipped when the server refuses
#    the flag.
# A GPT (a model with a context) also gets, before the server starts:
# 0. PyTorch decoding the same weights with a KV cache (bench/torch_gpt_decode.py, one
#    thread, MAX_TOKENS chars after the default prompt, temperature 0.8, REPS runs):
#    the single-stream reference; skipped when $TORCH_PYTHON has no torch.
# Prompts: slices of $CORPUS (any UTF-8 text) when given, else text the model writes
# itself (charlm-train sample, seed 1). Every figure is the median of REPS runs. The end
# says which targets are met: a GPT's (issue 20) and the LSTM's (issue 17) where measured.
#
# Environment: REPS (3), DURATION (10, seconds per run), CONCURRENCY ("1 8 32 64"),
# MAX_TOKENS (1000, max_tokens of the concurrency runs' requests), SERVER_ARGS (extra charlm-server flags), WORKERS (the server's generation workers, for
# the ceiling's split: taken from --threads/--workers in SERVER_ARGS, else nproc, the
# server's default), PREFILL_FLAG (the server's prefill chunk flag, default
# --prefill-chunk; empty skips step 3), PREFILL_CHUNK (its value for the default server;
# unset: the server's default), TTFC_PROMPTS (prompt lengths timed alone; default "100 1000
# 4000", a GPT's "100 1000"), LOADED_PROMPTS (those timed while 32 streams run; "4000", a
# GPT's "100 1000"), CORPUS, BUILD (build dir, default build/, configured as Release if it
# is not yet), PYTHON (python3), TORCH_PYTHON (a python with torch, /usr/bin/python3),
# SUMMARY (a file to write the medians to as one JSON object, with the model's card from
# GET /model: what bench/compare.sh reads).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=$(cd "${1:-$ROOT/artefacts}" && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-1 8 32 64}
MAX_TOKENS=${MAX_TOKENS:-1000}
SERVER_ARGS=${SERVER_ARGS:-}
PREFILL_FLAG=${PREFILL_FLAG---prefill-chunk}
PREFILL_CHUNK=${PREFILL_CHUNK:-}
CORPUS=${CORPUS:-}
PYTHON=${PYTHON:-python3}
TORCH_PYTHON=${TORCH_PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-$ROOT/build}
LOADED=32 # streams running while the long prompt arrives
WORKERS=${WORKERS:-$(printf '%s\n' "$SERVER_ARGS" |
    sed -n 's/.*--\(threads\|workers\)[= ]*\([0-9][0-9]*\).*/\2/p')}
[ -n "$WORKERS" ] || WORKERS=$(nproc)

# A build dir of another type (Debug, sanitizers) would measure the wrong thing.
if [ -f "$BUILD/CMakeCache.txt" ] &&
    ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$BUILD/CMakeCache.txt"; then
    BUILD=$ROOT/build-bench
fi
[ -f "$BUILD/CMakeCache.txt" ] ||
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j2 --target charlm-server charlm-train decode_ceiling streamclient \
    >/dev/null
"$PYTHON" -c '' 2>/dev/null || { echo "concurrency: $PYTHON not found" >&2; exit 1; }

WORK=$(mktemp -d /tmp/concurrency.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs;" \
    "charlm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "load average $(loadavg) at start"
echo "model $MODEL; $WORKERS workers; SERVER_ARGS '${SERVER_ARGS}'; REPS $REPS;" \
    "${DURATION}s per run; max_tokens $MAX_TOKENS"

# Starts charlm-server with extra flags; sets PID and PORT. Fails (return 1) when the server
# exits before listening, e.g. on a flag it does not know.
start_server() {
    : >"$WORK/server.log"
    # shellcheck disable=SC2086
    "$BUILD/charlm-server" --model "$MODEL" --host 127.0.0.1 --port 0 --max-concurrent 256 \
        $SERVER_ARGS "$@" 2>"$WORK/server.log" &
    PID=$!
    i=0
    while [ $i -lt 300 ]; do
        PORT=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\).*|\1|p' "$WORK/server.log")
        [ -z "$PORT" ] || return 0
        if ! kill -0 "$PID" 2>/dev/null; then
            wait "$PID" 2>/dev/null || true
            PID=
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "concurrency: the server did not come up" >&2
    cat "$WORK/server.log" >&2
    exit 1
}

stop_server() {
    kill "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
}

# streamclient, its JSON line appended to a results file (a failed request is reported,
# not fatal: the table says how many).
client() { # results-file args...
    out=$1
    shift
    "$BUILD/streamclient" --port "$PORT" "$@" >"$WORK/client.out" 2>"$WORK/client.err" || {
        echo "  (streamclient $*: some requests failed)" >&2
        head -3 "$WORK/client.err" >&2
    }
    tail -1 "$WORK/client.out" >>"$out"
}

# Time to first char for each prompt alone, then for LOADED_PROMPTS' while LOADED streams
# run (probe-reps times: char by char, a long one takes seconds, so once is enough there).
ttfc_runs() { # tag probe-reps
    for n in $TTFC_PROMPTS; do
        echo "  $1: time to first char, $n-char prompt ..." >&2
        client "$WORK/ttfc_$1_$n" --once --prompt-file "$WORK/p$n.txt" --reps "$REPS"
    done
    for n in $LOADED_PROMPTS; do
        echo "  $1: $n-char prompt while $LOADED streams run ..." >&2
        client "$WORK/loaded_$1_$n" --streams $LOADED --seconds 3 --probe-file "$WORK/p$n.txt" \
            --probe-reps "$2" --probe-delay 1 --seed-base 5000000
    done
}

echo "decode_ceiling ..." >&2
batches=$(echo "$CONCURRENCY" | awk -v OFS=, '{ $1 = $1; print }')
"$BUILD/decode_ceiling" --model "$MODEL" --workers "$WORKERS" --batches "$batches" \
    >"$WORK/ceiling.out"
tail -1 "$WORK/ceiling.out" >"$WORK/ceiling.json"
CONTEXT=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["context"])' \
    "$WORK/ceiling.json")
if [ "$CONTEXT" -gt 0 ]; then
    TTFC_PROMPTS=${TTFC_PROMPTS:-100 1000}
    LOADED_PROMPTS=${LOADED_PROMPTS:-100 1000}
    echo "torch_gpt_decode ..." >&2
    if "$TORCH_PYTHON" -c 'import torch' 2>/dev/null; then
        "$TORCH_PYTHON" "$ROOT/bench/torch_gpt_decode.py" --model "$MODEL" --chars "$MAX_TOKENS" \
            --reps "$REPS" --threads 1 >"$WORK/torch.out"
        tail -1 "$WORK/torch.out" >"$WORK/torch.json"
    else
        echo "$TORCH_PYTHON has no torch" >"$WORK/torch_skipped"
    fi
fi
TTFC_PROMPTS=${TTFC_PROMPTS:-100 1000 4000}
LOADED_PROMPTS=${LOADED_PROMPTS:-4000}

# The prompts: the first n chars of one passage, for each n timed.
if [ -n "$CORPUS" ]; then
    src=$CORPUS
    from="$CORPUS"
else
    # shellcheck disable=SC2086
    longest=$(printf '%s\n' $TTFC_PROMPTS $LOADED_PROMPTS | sort -n | tail -1)
    "$BUILD/charlm-train" sample --model "$MODEL" --prompt "" --max-tokens $((longest + 200)) \
        --seed 1 >"$WORK/sample.txt" 2>/dev/null
    src=$WORK/sample.txt
    from="text the model wrote (charlm-train sample --seed 1)"
fi
# shellcheck disable=SC2086
"$PYTHON" - "$src" "$WORK" $TTFC_PROMPTS $LOADED_PROMPTS <<'EOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
sizes = sorted({int(n) for n in sys.argv[3:]})
longest = sizes[-1]
start = len(text) // 3 if len(text) >= 3 * longest else 0  # mid-book, past any front matter
passage = text[start:start + longest]
if len(passage) < longest:
    sys.exit(f"concurrency: {sys.argv[1]} holds fewer than {longest} chars")
for n in sizes:
    open(f"{sys.argv[2]}/p{n}.txt", "w", encoding="utf-8").write(passage[:n])
EOF

chunk_args=
[ -z "$PREFILL_CHUNK" ] || chunk_args="$PREFILL_FLAG $PREFILL_CHUNK"
# shellcheck disable=SC2086
start_server $chunk_args || {
    echo "concurrency: the server refused to start:" >&2
    cat "$WORK/server.log" >&2
    exit 1
}
"$BUILD/streamclient" --port "$PORT" --streams 2 --seconds 1 >/dev/null 2>&1 || true # warm-up
"$PYTHON" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
    "http://127.0.0.1:$PORT/model" >"$WORK/card.json"
for c in $CONCURRENCY; do
    r=1
    while [ $r -le "$REPS" ]; do
        echo "  $c streams, run $r of $REPS: its ceiling, then the server ..." >&2
        "$BUILD/decode_ceiling" --model "$MODEL" --workers "$WORKERS" --batches "$c" --reps 5 --rep-ms 100 \
            >"$WORK/ceil.out"
        tail -1 "$WORK/ceil.out" >"$WORK/ceil_${c}_$r"
        client "$WORK/conc_${c}_$r" --streams "$c" --seconds "$DURATION" \
            --max-tokens "$MAX_TOKENS" --seed-base $((r * 1000000))
        r=$((r + 1))
    done
done
ttfc_runs default "$REPS"
stop_server

if [ -n "$PREFILL_FLAG" ]; then
    if start_server "$PREFILL_FLAG" 1; then
        ttfc_runs charbychar 1
        stop_server
    else
        echo "the server refused $PREFILL_FLAG 1: $(head -1 "$WORK/server.log")" \
            >"$WORK/charbychar_skipped"
    fi
else
    echo "PREFILL_FLAG is empty" >"$WORK/charbychar_skipped"
fi

echo "load average $(loadavg) at end"
echo
sed '$d' "$WORK/ceiling.out"
echo
"$PYTHON" - "$WORK" "$REPS" "$DURATION" "$LOADED" "$PREFILL_FLAG" "$from" "$CONCURRENCY" \
    "$MAX_TOKENS" "$TTFC_PROMPTS" "$LOADED_PROMPTS" "${SUMMARY:-}" <<'EOF'
import json, os, statistics, sys
work, reps, duration, loaded, flag, source = sys.argv[1:7]
conc = [int(c) for c in sys.argv[7].split()]
max_tokens = sys.argv[8]
ttfc_sizes = [int(n) for n in sys.argv[9].split()]
loaded_sizes = [int(n) for n in sys.argv[10].split()]
summary_path = sys.argv[11]

def lines(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]

def med(xs):
    return statistics.median(xs) if xs else float("nan")

ceil = json.load(open(os.path.join(work, "ceiling.json")))
print(f"decode at concurrency: POST /generate streams, max_tokens {max_tokens} (a decode "
      f"benchmark: generated chars are most of the rows), temperature 0.8; {duration} s per "
      f"run, median of {reps} runs; ceiling: decode_ceiling at batch n, split over "
      f"{ceil['workers']} workers, measured right before each run with the server idle; "
      f"fraction: each run's chars/s over its own ceiling")
print(f"{'streams':>7} {'chars/s':>9} {'rows/s':>9} {'prompt':>6} {'ceiling':>9} {'fraction':>8} "
      f"{'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>7} {'ttfc p50':>8} {'max gap':>8} {'reqs':>5} "
      f"{'failed':>6}  runs chars/s / ceiling")
rows = {}
prompt_chars = None
for c in conc:
    # A run and the ceiling measured just before it; a run whose client printed nothing
    # usable is left out with its ceiling.
    pairs = []
    for r in range(1, int(reps) + 1):
        run, cl = lines(f"conc_{c}_{r}"), lines(f"ceil_{c}_{r}")
        if run and cl:
            pairs.append((run[0], cl[0]["batches"][0]["ceiling"]))
    if not pairs:
        continue
    runs = [p[0] for p in pairs]
    cps = med([r["chars_per_s"] for r in runs])
    rps = med([r["rows_per_s"] for r in runs])
    share = med([r["prompt_rows"] / (r["prompt_rows"] + r["chars"]) for r in runs
                 if r["prompt_rows"] + r["chars"] > 0])
    prompt_chars = runs[0]["prompt_chars"]
    ceiling = med([p[1] for p in pairs])
    frac = med([p[0]["chars_per_s"] / p[1] for p in pairs])
    # A run too short for any request to finish within it has no latencies.
    done = [r for r in runs if r["requests"] > 0]
    p50 = med([r["latency_p50_ms"] for r in done])
    p99 = med([r["latency_p99_ms"] for r in done])
    rows[c] = dict(cps=cps, ceiling=ceiling, frac=frac, p50=p50, p99=p99)
    print(f"{c:>7} {cps:>9.0f} {rps:>9.0f} {share:>6.1%} {ceiling:>9.0f} {frac:>8.0%} "
          f"{p50:>8.1f} {p99:>8.1f} {p99 / p50:>7.2f} {med([r['ttfc_p50_ms'] for r in done]):>8.1f} "
          f"{max(r['max_gap_ms'] for r in runs):>8.1f} "
          f"{med([r['requests'] for r in runs]):>5.0f} {sum(r['errors'] for r in runs):>6}  "
          + " ".join(f"{r['chars_per_s']:.0f}/{cl:.0f}" for r, cl in pairs))
print(f"(rows/s: generated chars plus the {prompt_chars}-char prompts of the requests sent within "
      f"a run, per second; prompt: their share of those rows; ceiling: median of the runs' "
      f"ceilings; fraction: median of the runs' fractions; latencies over the requests that "
      f"finished within a run, reqs per run; ttfc p50: time to first char of these prompts; "
      f"max gap: the largest gap between two chunks of one stream, over all runs)")

if ceil["context"] > 0 and prompt_chars is not None:
    # The context rule: a full stream re-feeds its last context / 2 chars as a prefill.
    B, keep, m = ceil["context"], ceil["context"] // 2, int(max_tokens)
    fed = prompt_chars + m - 1
    shifts = 0 if fed <= B else -(-(fed - B) // (B - keep))
    per_char = (fed + shifts * keep) / m
    print(f"(context {B}: a request of {prompt_chars} + {m} chars makes {shifts} context "
          f"shifts of {keep} chars re-fed, so the server runs about {per_char:.2f} rows through "
          f"the model per generated char, the re-fed ones as one prefill of {keep} rows each "
          f"(cheaper per row than a decode step's); chars/s counts generated chars only"
          + "".join(f"; at {c} streams about {rows[c]['cps'] * per_char:.0f} rows/s, "
                    f"{rows[c]['cps'] * per_char / rows[c]['ceiling']:.0%} of the ceiling"
                    for c in conc if c in rows) + ")")

torch_ref = lines("torch.json")
if 1 in rows:
    s = rows[1]["cps"]
    print(f"\nsingle stream: {s:.0f} chars/s = {s / ceil['single_stream_bound']:.0%} of its "
          f"memory-bandwidth bound {ceil['single_stream_bound']:.0f} chars/s "
          f"({ceil['bandwidth_dram_gbs']:.2f} GB/s from DRAM / "
          f"{ceil['weight_bytes'] / 1e6:.2f} MB of weights per step); with the weights cached "
          f"({ceil['bandwidth_cached_gbs']:.2f} GB/s) the bound is "
          f"{ceil['single_stream_bound_cached']:.0f} chars/s ({s / ceil['single_stream_bound_cached']:.0%})")
    if torch_ref:
        t = torch_ref[0]
        print(f"PyTorch with a KV cache, {t['threads']} thread, the same weights and "
              f"{t['chars']} chars: {t['chars_per_s']:.0f} chars/s (runs "
              + ", ".join(f"{x:.0f}" for x in t["runs"]) + f"); charlm {s / t['chars_per_s']:.1f}x")
if os.path.exists(os.path.join(work, "torch_skipped")):
    print("PyTorch reference skipped: " + open(os.path.join(work, "torch_skipped")).read().strip())

print(f"\ntime to first char, max_tokens 1, median of {reps} requests; prompts from {source}")
skipped = os.path.join(work, "charbychar_skipped")
cbc = not os.path.exists(skipped)
head = f"{flag} 1" if flag else "char by char"
print(f"{'prompt':<34} {'default ms':>11} {head + ' ms':>20} {'speed-up':>9}")
alone_ratio = {}
for n in ttfc_sizes:
    a = lines(f"ttfc_default_{n}")
    b = lines(f"ttfc_charbychar_{n}")
    ta = a[0]["ttfc_median_ms"] if a else float("nan")
    tb = b[0]["ttfc_median_ms"] if b else float("nan")
    if a and b:
        alone_ratio[n] = tb / ta
    print(f"{str(n) + ' chars, alone':<34} {ta:>11.1f} {f'{tb:.1f}' if b else '-':>20} "
          f"{(f'{tb / ta:.1f}x') if a and b else '-':>9}")
print(f"\n{f'while {loaded} streams run':<34} {'ttfc ms':>11} {'max gap ms':>11} {'requests':>9}")
gap = {}
loaded_ttfc = {}
for n in loaded_sizes:
    for tag, label in (("default", "default"), ("charbychar", head)):
        x = lines(f"loaded_{tag}_{n}")
        if not x or "probe" not in x[0]:
            continue
        p = x[0]["probe"]
        loaded_ttfc[(n, tag)] = p["ttfc_median_ms"]
        if tag == "default":
            gap[n] = p["max_gap_during_ms"]
        print(f"{f'{n} chars, {label}':<34} {p['ttfc_median_ms']:>11.1f} "
              f"{p['max_gap_during_ms']:>11.1f} {p['reps']:>9}")
print("(max gap: the largest gap between two chunks of a running stream while a long prompt "
      "waited for its first char; the long-prompt requests go one after the other)")
if not cbc:
    print("char-by-char comparison skipped: " + open(skipped).read().strip())

def verdict(ok):
    return "yes" if ok else "NO"

print("\ntargets, as measured here (a single stream and 32 streams: medians of the runs):")
if 1 in rows:
    s = rows[1]["cps"]
    if torch_ref:
        r = s / torch_ref[0]["chars_per_s"]
        print(f"  single stream {r:.1f}x PyTorch with a KV cache, one thread each (>= 8x): "
              f"{verdict(r >= 8)}")
    f = s / ceil["single_stream_bound_cached"]
    print(f"  single stream at {f:.0%} of the memory-bandwidth bound, weights cached (>= 70%): "
          f"{verdict(f >= 0.7)}; from DRAM {s / ceil['single_stream_bound']:.0%}")
if 1 in rows and 32 in rows:
    r = rows[32]["cps"] / rows[1]["cps"]
    print(f"  32 streams {r:.1f}x one stream's chars/s with {ceil['workers']} workers (>= 4x): "
          f"{verdict(r >= 4)}")
if 32 in rows:
    f = rows[32]["frac"]
    print(f"  32 streams at {f:.0%} of the ceiling (>= 75%; median of the runs' fractions): "
          f"{verdict(f >= 0.75)}")
if 64 in rows and rows[64]["p50"] > 0:
    q = rows[64]["p99"] / rows[64]["p50"]
    print(f"  64 streams p99/p50 = {q:.2f} (<= 2): {verdict(q <= 2)}")
for n in loaded_sizes:
    if (n, "charbychar") in loaded_ttfc and (n, "default") in loaded_ttfc and n >= 1000:
        r = loaded_ttfc[(n, "charbychar")] / loaded_ttfc[(n, "default")]
        print(f"  {n}-char time to first char while {loaded} streams run {r:.1f}x lower than "
              f"char by char (>= 5x): {verdict(r >= 5)}"
              + (f" (alone, {alone_ratio[n]:.1f}x)" if n in alone_ratio else ""))
    if n in gap:
        print(f"  running streams' gap during the {n}-char prompt {gap[n]:.1f} ms (< 50 ms): "
              f"{verdict(gap[n] < 50)}")

if summary_path:
    alone = {n: lines(f"ttfc_default_{n}") for n in ttfc_sizes}
    json.dump({"card": json.load(open(os.path.join(work, "card.json"))),
               "chars_per_s": {str(c): rows[c]["cps"] for c in rows},
               "ttfc_alone_ms": {str(n): a[0]["ttfc_median_ms"] for n, a in alone.items() if a},
               "ttfc_loaded_ms": {str(n): t for (n, tag), t in loaded_ttfc.items()
                                  if tag == "default"},
               "loaded_streams": int(loaded), "reps": int(reps)},
              open(summary_path, "w"))
EOF
