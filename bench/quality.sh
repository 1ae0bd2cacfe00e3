#!/bin/sh
# Model quality: charlm-train vs the PyTorch reference, same config, same steps, scored
# by the same measure.
#
#   bench/quality.sh CORPUS STEPS [OUTDIR]     (e.g. STEPS=1500; takes a while)
#
# Both train the default configuration (plus $EXTRA flags) with seed $SEED (default 42)
# and --threads $THREADS (default 2); then `charlm-train eval --val-frac 0.1` scores each
# saved model on the last 10% of the corpus as one continuous stream from the zero state. Each
# trainer's own validation figure (B parallel streams) is shown as well. The models are
# kept in OUTDIR (default a temporary folder, removed at the end).
# Environment: SEED; BIN, PYTHON, THREADS, EXTRA as in bench/train_bench.sh.
set -eu

CORPUS=${1:?usage: bench/quality.sh CORPUS STEPS [OUTDIR]}
STEPS=${2:?usage: bench/quality.sh CORPUS STEPS [OUTDIR]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-2}
SEED=${SEED:-42}
EXTRA=${EXTRA:-}
"$PYTHON" -c 'import torch' 2>/dev/null ||
    { echo "quality: $PYTHON cannot import torch (scripts/install-deps.sh bench)" >&2; exit 1; }
BIN=${BIN:-$ROOT/build/charlm-train}
if [ ! -x "$BIN" ]; then
    BIN=$ROOT/build-bench/charlm-train
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" -j2 --target charlm-train >/dev/null
fi
if [ $# -ge 3 ]; then
    OUT=$3
    mkdir -p "$OUT"
else
    OUT=$(mktemp -d /tmp/quality.XXXXXX)
    trap 'rm -rf "$OUT"' EXIT INT TERM
fi

EVERY=$((STEPS / 10))
[ "$EVERY" -ge 1 ] || EVERY=1

# One row per trainer, printed as soon as that trainer is trained and scored.
row() { # IMPL
    "$PYTHON" - "$OUT" "$1" <<'EOF'
import json, sys
out, impl = sys.argv[1], sys.argv[2]
def last(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
own = last(f"{out}/{impl}.out").get("best_val_loss" if impl == "charlm" else "val_loss")
e = last(f"{out}/{impl}.eval")
print(f"{impl:<8}{e['loss']:>11.4f}{e['bpc']:>8.4f}{e['chars']:>9}{own:>10.4f}", flush=True)
EOF
}

echo "validation loss after $STEPS steps (nats/char; eval = charlm-train eval --val-frac 0.1, one stream)"
printf '%-8s%11s%8s%9s%10s\n' impl 'eval loss' bpc chars 'own val'

echo "charlm: training $STEPS steps ..." >&2
# shellcheck disable=SC2086
"$BIN" train --corpus "$CORPUS" --out "$OUT/charlm" --steps "$STEPS" --eval-every "$EVERY" \
    --threads "$THREADS" --seed "$SEED" $EXTRA >"$OUT/charlm.out" 2>"$OUT/charlm.err" ||
    { cat "$OUT/charlm.err" >&2; exit 1; }
"$BIN" eval --model "$OUT/charlm" --corpus "$CORPUS" --val-frac 0.1 >"$OUT/charlm.eval"
row charlm

echo "torch: training $STEPS steps ..." >&2
# shellcheck disable=SC2086
"$PYTHON" "$ROOT/bench/torch_ref.py" --corpus "$CORPUS" --out "$OUT/torch" --steps "$STEPS" \
    --eval-every "$EVERY" --threads "$THREADS" --seed "$SEED" $EXTRA >"$OUT/torch.out" \
    2>"$OUT/torch.err" || { cat "$OUT/torch.err" >&2; exit 1; }
"$BIN" eval --model "$OUT/torch" --corpus "$CORPUS" --val-frac 0.1 >"$OUT/torch.eval"
row torch

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
def loss(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])["loss"]
d = loss(f"{sys.argv[1]}/charlm.eval") - loss(f"{sys.argv[1]}/torch.eval")
print(f"charlm - torch = {d:+.4f} nats/char ({'within' if abs(d) <= 0.02 else 'outside'} 0.02)")
EOF
