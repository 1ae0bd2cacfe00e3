#!/bin/sh
# Which GPT to train on a text in a fixed time: every row gets the same wall-clock budget
# (its step count is worked out from a short probe of its own speed), so a bigger model
# sees fewer tokens, as it would in the full run.
#
#   bench/gpt_sweep.sh CORPUS [SECONDS]      (SECONDS per row, default 270)
#
# Environment: BIN (charlm-train, default build/charlm-train), COMMON (flags every row
# shares, default "--batch 32 --weight-decay 0.1"), EVAL_EVERY (default 100), SEED (42),
# THREADS (2), KEEP (a folder to keep the runs in; default a temporary one; a row whose
# run is already there is not run again, so an interrupted sweep goes on), ROWS (row
# names from the list below; default all).
#
# Rows: layers L, heads, embedding C, context (block), dropout and peak learning rate:
#   c128         L4 H4 C128 block 128 dropout 0.1 lr 1e-3   (the trainer's defaults)
#   c256         L4 H8 C256 block 128 dropout 0.1 lr 1e-3
#   c256-d2      L4 H8 C256 block 128 dropout 0.2 lr 1e-3
#   c256-lr3     L4 H8 C256 block 128 dropout 0.1 lr 3e-3
#   c192-lr3     L4 H6 C192 block 128 dropout 0.1 lr 3e-3
#   l6-c256-lr3  L6 H8 C256 block 128 dropout 0.1 lr 3e-3
#
# The table: best validation loss (training's measure, --val-frac 0.1) and its step, the
# last evaluation's validation and training loss (the gap is the overfitting), steps run,
# tokens/s, wall seconds. Short budgets favour small models; read the trend of each row's
# curve (KEEP) before picking the full run's size. The load average is printed.
set -eu

CORPUS=${1:?usage: bench/gpt_sweep.sh CORPUS [SECONDS]}
BUDGET=${2:-270}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/charlm-train}
COMMON=${COMMON:---batch 32 --weight-decay 0.1}
EVAL_EVERY=${EVAL_EVERY:-100}
SEED=${SEED:-42}
THREADS=${THREADS:-2}
ROWS=${ROWS:-c128 c256 c256-d2 c256-lr3 c192-lr3 l6-c256-lr3}
[ -x "$BIN" ] || { echo "gpt_sweep: $BIN is missing; build first (README, Building)" >&2; exit 1; }

if [ -n "${KEEP:-}" ]; then
    WORK=$KEEP
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d /tmp/gpt_sweep.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT INT TERM
fi

flags_of() {
    case $1 in
        c128) echo "--layers 4 --heads 4 --embed 128 --block 128 --dropout 0.1 --lr 1e-3" ;;
        c256) echo "--layers 4 --heads 8 --embed 256 --block 128 --dropout 0.1 --lr 1e-3" ;;
        c256-d2) echo "--layers 4 --heads 8 --embed 256 --block 128 --dropout 0.2 --lr 1e-3" ;;
        c256-lr3) echo "--layers 4 --heads 8 --embed 256 --block 128 --dropout 0.1 --lr 3e-3" ;;
        c192-lr3) echo "--layers 4 --heads 6 --embed 192 --block 128 --dropout 0.1 --lr 3e-3" ;;
        l6-c256-lr3) echo "--layers 6 --heads 8 --embed 256 --block 128 --dropout 0.1 --lr 3e-3" ;;
        *) echo "gpt_sweep: unknown row '$1'" >&2; exit 1 ;;
    esac
}
block_of() { echo "$1" | sed 's/.*--block \([0-9]*\).*/\1/'; }
batch_of() { echo "$COMMON" | sed 's/.*--batch \([0-9]*\).*/\1/'; }

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
: >"$WORK/results"
: >"$WORK/last"
for row in $ROWS; do
    flags=$(flags_of "$row")
    out=$WORK/$row
    if [ -s "$out.secs" ]; then
        echo "$row: kept from an earlier sweep in $WORK" >&2
        echo "$row $(cat "$out.secs") $(tail -n 1 "$out.summary")" >>"$WORK/results"
        echo "$row $(cat "$out.secs") $(tail -n 1 "$out/train_log.jsonl")" >>"$WORK/last"
        continue
    fi
    rm -rf "$out"
    # shellcheck disable=SC2086 # COMMON and flags are lists of flags
    rate=$("$BIN" train --arch gpt --corpus "$CORPUS" --out "$out.probe" $COMMON $flags \
        --steps 6 --eval-every 1000 --seed "$SEED" --threads "$THREADS" 2>/dev/null |
        sed 's/.*"tokens_per_s": \([0-9.]*\).*/\1/')
    rm -rf "$out.probe"
    # 0.85: the evaluations' share of the wall clock at these sizes
    steps=$(python3 -c "print(max(1, int($BUDGET * $rate * 0.85 / ($(batch_of) * $(block_of "$flags")))))")
    echo "$row: $flags, $steps steps ($rate tokens/s) ..." >&2
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BIN" train --arch gpt --corpus "$CORPUS" --out "$out" $COMMON $flags --steps "$steps" \
        --eval-every "$EVAL_EVERY" --seed "$SEED" --threads "$THREADS" \
        >"$out.summary" 2>"$out.err" || { tail -n 3 "$out.err" >&2; exit 1; }
    secs=$(($(date +%s) - start))
    echo "$secs" >"$out.secs"
    echo "$row $secs $(tail -n 1 "$out.summary")" >>"$WORK/results"
    echo "$row $secs $(tail -n 1 "$out/train_log.jsonl")" >>"$WORK/last"
done
LOAD1=$(cut -d' ' -f1 /proc/loadavg)

python3 - "$WORK/results" "$WORK/last" "$BUDGET" "$LOAD0" "$LOAD1" "$COMMON" <<'PY'
import json, sys
rows = [l.split(" ", 2) for l in open(sys.argv[1])]
last = {l.split(" ", 2)[0]: json.loads(l.split(" ", 2)[2]) for l in open(sys.argv[2])}
print(f"GPT sweep: {sys.argv[6]}, {sys.argv[3]} s a row; load average "
      f"{sys.argv[4]} at start, {sys.argv[5]} at end")
print(f"{'row':<12}{'best val':>10}{'at step':>9}{'last val':>10}{'last train':>12}"
      f"{'steps':>7}{'tokens/s':>10}{'secs':>7}")
for name, secs, summary in rows:
    s = json.loads(summary)
    print(f"{name:<12}{s['best_val_loss']:>10.4f}{s['best_step']:>9}"
          f"{last[name]['val_loss']:>10.4f}{last[name]['train_loss']:>12.4f}{s['steps']:>7}"
          f"{s['tokens_per_s']:>10.0f}{int(secs):>7}")
PY
