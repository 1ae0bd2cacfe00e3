#!/bin/sh
# What each regularisation knob buys: one training per knob, alone, against the same
# baseline on the same budget, and all of them together.
#
#   bench/reg_sweep.sh CORPUS [STEPS]      (STEPS default 1500)
#
# Environment: BIN (charlm-train, default build/charlm-train), MODEL (the architecture and
# batch flags shared by every row, default the shipped model's: "--embed 64 --hidden 384
# --layers 2 --seq 128 --batch 64"), LR (default 2e-3), EVAL_EVERY (default 150), SEED
# (default 42), THREADS (default 2), OTHER (optional: a text none of the runs saw, scored
# whole with `charlm-train eval` for a generalisation column), KEEP (a folder to keep the
# runs in; default a temporary one, removed at the end), ROWS (the row names to run, from
# the list below; default all).
#
# Rows (each adds its flags to the baseline's; the baseline is plain Adam, no dropout):
#   baseline      nothing
#   dropout       --dropout 0.3            per-step dropout between layers (today's recipe)
#   var           --var-dropout 0.25       one mask per sequence on inputs, between, outputs
#   embed         --embed-dropout 0.1      whole embedding rows
#   wd            --weight-decay 0.1       AdamW
#   all           --var-dropout 0.25 --embed-dropout 0.1 --weight-decay 0.1
#   all+patience  the same with --patience 6 (the best loss is the same or the run's own
#                 prefix; the column to read is steps: what early stopping saves)
#
# The table: best validation loss (training's measure, --val-frac 0.1), its difference from
# the first row's (the baseline unless ROWS says otherwise) and its step, the
# last evaluation's validation and training loss (the gap is the overfitting), steps run,
# wall seconds, and with OTHER the saved model's loss on it. The machine's load average is
# printed: times from a shared machine are not comparable with a quiet one's.
set -eu

CORPUS=${1:?usage: bench/reg_sweep.sh CORPUS [STEPS]}
STEPS=${2:-1500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/build/charlm-train}
MODEL=${MODEL:---embed 64 --hidden 384 --layers 2 --seq 128 --batch 64}
LR=${LR:-2e-3}
EVAL_EVERY=${EVAL_EVERY:-150}
SEED=${SEED:-42}
THREADS=${THREADS:-2}
OTHER=${OTHER:-}
ROWS=${ROWS:-baseline dropout var embed wd all all+patience}
[ -x "$BIN" ] || { echo "reg_sweep: $BIN is missing; build first (README, Building)" >&2; exit 1; }

if [ -n "${KEEP:-}" ]; then
    WORK=$KEEP
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d /tmp/reg_sweep.XXXXXX)
    trap 'rm -rf "$WORK"' EXIT INT TERM
fi

flags_of() {
    case $1 in
        baseline) echo "" ;;
        dropout) echo "--dropout 0.3" ;;
        var) echo "--var-dropout 0.25" ;;
        embed) echo "--embed-dropout 0.1" ;;
        wd) echo "--weight-decay 0.1" ;;
        all) echo "--var-dropout 0.25 --embed-dropout 0.1 --weight-decay 0.1" ;;
        all+patience) echo "--var-dropout 0.25 --embed-dropout 0.1 --weight-decay 0.1 --patience 6" ;;
        *) echo "reg_sweep: unknown row '$1'" >&2; exit 1 ;;
    esac
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
: >"$WORK/results"
for row in $ROWS; do
    extra=$(flags_of "$row")
    out=$WORK/$row
    echo "$row: $extra ..." >&2
    start=$(date +%s)
    # shellcheck disable=SC2086 # MODEL and extra are lists of flags
    "$BIN" train --corpus "$CORPUS" --out "$out" $MODEL --steps "$STEPS" --lr "$LR" \
        --eval-every "$EVAL_EVERY" --seed "$SEED" --threads "$THREADS" $extra \
        >"$out.summary" 2>"$out.err" || { tail -n 3 "$out.err" >&2; exit 1; }
    secs=$(($(date +%s) - start))
    other=null
    if [ -n "$OTHER" ]; then
        other=$("$BIN" eval --model "$out" --corpus "$OTHER" | sed 's/.*"loss": \([0-9.]*\).*/\1/')
    fi
    echo "$row $secs $other $(tail -n 1 "$out.summary")" >>"$WORK/results"
    echo "$row $secs $other $(tail -n 1 "$out/train_log.jsonl")" >>"$WORK/last"
done
LOAD1=$(cut -d' ' -f1 /proc/loadavg)

python3 - "$WORK/results" "$WORK/last" "$STEPS" "$LOAD0" "$LOAD1" "$MODEL" "$OTHER" <<'EOF'
import json, sys
rows = [l.split(" ", 3) for l in open(sys.argv[1])]
last = {l.split(" ", 3)[0]: json.loads(l.split(" ", 3)[3]) for l in open(sys.argv[2])}
print(f"regularisation sweep: {sys.argv[6]}, {sys.argv[3]} steps; load average "
      f"{sys.argv[4]} at start, {sys.argv[5]} at end")
head = f"{'row':<14}{'best val':>10}{'vs first':>10}{'at step':>9}{'last val':>10}{'last train':>12}{'steps':>7}{'secs':>7}"
if sys.argv[7]:
    head += f"{'other text':>12}"
print(head)
base = None
for name, secs, other, summary in rows:
    s = json.loads(summary)
    base = s["best_val_loss"] if base is None else base
    line = (f"{name:<14}{s['best_val_loss']:>10.4f}{s['best_val_loss'] - base:>+10.4f}"
            f"{s['best_step']:>9}"
            f"{last[name]['val_loss']:>10.4f}{last[name]['train_loss']:>12.4f}{s['steps']:>7}"
            f"{int(secs):>7}")
    if sys.argv[7]:
        line += f"{float(other):>12.4f}"
    print(line)
EOF
