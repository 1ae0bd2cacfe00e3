#!/bin/sh
# The shipped models side by side, measured in one sitting on one machine: README's
# comparison table.
#
#   bench/compare.sh CORPUS OTHER      (CORPUS: the text they were trained on, Frankenstein;
#                                       OTHER: a text neither saw, Tiny Shakespeare)
#
# For each model folder in MODELS (default "artefacts artefacts/gpt"):
#   - parameters and memory per stream (GET /model), the size of model.safetensors;
#   - loss in nats/char on CORPUS's last 10% (its validation split) and on OTHER's last
#     10%, by charlm-train eval;
#   - training: tokens trained (the log's last step x batch x sequence length), the
#     tokens/s of its recipe now (TRAIN_STEPS steps of the same flags, threads 2, the
#     evaluations not counted), the time those tokens take at that speed, and the wall
#     clock its train_log.jsonl recorded (which may include a loaded machine);
#   - serving (bench/concurrency.sh at 1 and 32 streams, REPS runs of DURATION s, medians):
#     chars/s for one stream and for 32, time to first char for a 1,000-char prompt alone
#     and while 32 streams run.
# Every timed figure is a median of REPS (3) runs. The machine and its load are printed.
#
# Environment: MODELS, RECIPES (one training flag list per model, separated by '|',
# default the two shipped models' recipes, as their MODEL.md give them), TRAIN_STEPS (60), REPS (3),
# DURATION (10), BUILD (build/), PYTHON (python3).
set -eu

CORPUS=${1:?usage: bench/compare.sh CORPUS OTHER}
OTHER=${2:?usage: bench/compare.sh CORPUS OTHER}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
PYTHON=${PYTHON:-python3}
MODELS=${MODELS:-artefacts artefacts/gpt}
LSTM_RECIPE="--embed 64 --hidden 384 --layers 2 --dropout 0 --var-dropout 0.25 --embed-dropout 0.1 --weight-decay 0.1 --seq 128 --batch 64 --lr 2e-3"
GPT_RECIPE="--arch gpt --layers 4 --heads 8 --embed 256 --block 128 --dropout 0.2 --weight-decay 0.1 --batch 32 --lr 3e-3"
RECIPES=${RECIPES:-$LSTM_RECIPE|$GPT_RECIPE}
TRAIN_STEPS=${TRAIN_STEPS:-60}
REPS=${REPS:-3}
DURATION=${DURATION:-10}
for b in charlm-train charlm-server streamclient decode_ceiling; do
    [ -x "$BUILD/$b" ] || { echo "compare: $BUILD/$b is missing; build first (README, Building)" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/compare.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs;" \
    "charlm $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
i=0
for m in $MODELS; do
    i=$((i + 1))
    dir=$(cd "$ROOT" && cd "$m" && pwd)
    recipe=$(printf '%s\n' "$RECIPES" | cut -d'|' -f"$i")
    echo "$m: eval ..." >&2
    "$BUILD/charlm-train" eval --model "$dir" --corpus "$CORPUS" --val-frac 0.1 >"$WORK/$i.val"
    "$BUILD/charlm-train" eval --model "$dir" --corpus "$OTHER" --val-frac 0.1 >"$WORK/$i.other"
    echo "$m: $TRAIN_STEPS training steps of $recipe ..." >&2
    # shellcheck disable=SC2086 # the recipe is a list of flags
    "$BUILD/charlm-train" train --corpus "$CORPUS" --out "$WORK/$i.train" $recipe \
        --steps "$TRAIN_STEPS" --eval-every 100000 --threads 2 --seed 1 \
        >"$WORK/$i.trainrate" 2>/dev/null
    rm -rf "$WORK/$i.train"
    echo "$m: serving ..." >&2
    CONCURRENCY="1 32" TTFC_PROMPTS=1000 LOADED_PROMPTS=1000 PREFILL_FLAG='' \
        TORCH_PYTHON=/nonexistent CORPUS=$CORPUS REPS=$REPS DURATION=$DURATION BUILD=$BUILD \
        SUMMARY=$WORK/$i.serve sh "$ROOT/bench/concurrency.sh" "$dir" >"$WORK/$i.conc" 2>&1 || {
        tail -5 "$WORK/$i.conc" >&2
        exit 1
    }
    printf '%s\n' "$m" >"$WORK/$i.name"
    printf '%s\n' "$dir" >"$WORK/$i.dir"
    printf '%s\n' "$recipe" >"$WORK/$i.recipe"
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at end"

"$PYTHON" - "$WORK" "$i" <<'EOF'
import json, os, sys
work, n = sys.argv[1], int(sys.argv[2])

cols = []
for i in range(1, n + 1):
    p = lambda ext: os.path.join(work, f"{i}.{ext}")
    d = open(p("dir")).read().strip()
    serve = json.load(open(p("serve")))
    card = serve["card"]
    log = [json.loads(l) for l in open(os.path.join(d, "train_log.jsonl")) if l.strip()]
    flags = open(p("recipe")).read().split()
    flag = lambda name: int(flags[flags.index(name) + 1])
    per_step = flag("--batch") * flag("--block" if "--block" in flags else "--seq")
    rate = json.load(open(p("trainrate")))["tokens_per_s"]
    cols.append({
        "name": open(p("name")).read().strip(),
        "arch": card.get("arch", "?"),
        "params": card["parameters"],
        "bytes": os.path.getsize(os.path.join(d, "model.safetensors")),
        "val": json.load(open(p("val")))["loss"],
        "other": json.load(open(p("other")))["loss"],
        "tokens": log[-1]["step"] * per_step,
        "rate": rate,
        "recorded_s": sum(r["elapsed_s"] for r, nxt in zip(log, log[1:] + [None])
                          if nxt is None or nxt["elapsed_s"] < r["elapsed_s"]),
        "serve": serve,
    })

def row(label, f):
    print(f"| {label} | " + " | ".join(f(c) for c in cols) + " |")

print()
print("| | " + " | ".join(f"{c['name']} ({c['arch']})" for c in cols) + " |")
print("| --- |" + " ---: |" * len(cols))
row("parameters", lambda c: f"{c['params']:,}")
row("model.safetensors", lambda c: f"{c['bytes'] / 1e6:.2f} MB")
row("validation loss (last 10% of the training text)", lambda c: f"{c['val']:.4f}")
row("a text neither saw (last 10% of OTHER)", lambda c: f"{c['other']:.4f}")
row("training tokens (steps x batch x context)", lambda c: f"{c['tokens'] / 1e6:.1f} M")
row("training tokens/s (2 threads, measured now)", lambda c: f"{c['rate']:,.0f}")
row("training time at that speed", lambda c: f"{c['tokens'] / c['rate'] / 60:.0f} min")
row("wall clock the log recorded", lambda c: f"{c['recorded_s'] / 60:.0f} min")
row("serving, 1 stream", lambda c: f"{c['serve']['chars_per_s']['1']:,.0f} chars/s")
row("serving, 32 streams", lambda c: f"{c['serve']['chars_per_s']['32']:,.0f} chars/s")
row("memory per stream", lambda c: f"{c['serve']['card']['memory_per_stream'] / 1024:,.1f} KiB")
row("first char, 1,000-char prompt, alone", lambda c: f"{c['serve']['ttfc_alone_ms']['1000']:.1f} ms")
row("first char, 1,000-char prompt, 32 streams running",
    lambda c: f"{c['serve']['ttfc_loaded_ms']['1000']:.1f} ms")
EOF
