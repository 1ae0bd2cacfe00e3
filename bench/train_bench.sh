#!/bin/sh
# Training throughput: charlm-train vs the PyTorch reference, against OpenBLAS's ceiling.
#
#   bench/train_bench.sh CORPUS [STEPS]      (STEPS default 200)
#
# Environment: BIN (charlm-train, default build/charlm-train, built into build-bench/ if
# missing), CEILING (sgemm_ceiling, default next to BIN), PYTHON (default /usr/bin/python3),
# REPS (runs per configuration, default 3), THREADS (default "1 2"), EXTRA (more flags for
# both trainers, e.g. "--hidden 128").
#
# Each configuration is run REPS times, charlm and torch interleaved so background load
# hits both alike, and the median tokens/s is reported. Both use the default model and
# evaluate only at the end (--eval-every STEPS), which neither counts in its timing.
# GFLOP/s = tokens/s x (sgemm FLOPs of one step / tokens of one step), the FLOPs counted
# by sgemm_ceiling at the same shapes; "of ceiling" divides by sgemm_ceiling's own rate.
#
# Fairness to torch at --threads > 1: its OpenMP (and OpenBLAS) threads busy-wait, which
# collapses its throughput several-fold whenever anything else wants the cores. Each run
# therefore tries OMP_WAIT_POLICY=active (torch's default) and =passive and keeps the
# faster (TORCH_WAIT overrides the list). The load average is printed: figures taken on
# a busy machine are not comparable with a quiet one's.
set -eu

CORPUS=${1:?usage: bench/train_bench.sh CORPUS [STEPS]}
STEPS=${2:-200}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}
REPS=${REPS:-3}
THREADS=${THREADS:-1 2}
EXTRA=${EXTRA:-}
TORCH_WAIT=${TORCH_WAIT:-active passive}
"$PYTHON" -c 'import torch' 2>/dev/null ||
    { echo "train_bench: $PYTHON cannot import torch (scripts/install-deps.sh bench)" >&2; exit 1; }
BIN=${BIN:-$ROOT/build/charlm-train}
if [ ! -x "$BIN" ]; then
    BIN=$ROOT/build-bench/charlm-train
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" -j2 --target charlm-train >/dev/null
fi
CEILING=${CEILING:-$(dirname "$BIN")/sgemm_ceiling}
if [ ! -x "$CEILING" ]; then
    CEILING=$ROOT/build-bench/sgemm_ceiling
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$ROOT/build-bench" -j2 --target sgemm_ceiling >/dev/null
fi

WORK=$(mktemp -d /tmp/train_bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

# The ceiling at this corpus's vocabulary size and the flags' shapes.
V=$("$PYTHON" -c 'import sys; print(len(set(open(sys.argv[1], "rb").read().decode("utf-8"))))' "$CORPUS")
# shellcheck disable=SC2086 # EXTRA is a list of flags
CFLAGS=$("$PYTHON" - $EXTRA <<'EOF'
import sys
names = {"--embed": "--embed", "--hidden": "--hidden", "--layers": "--layers",
         "--seq": "--seq", "--batch": "--batch"}
a = sys.argv[1:]
print(" ".join(f"{a[i]} {a[i + 1]}" for i in range(0, len(a) - 1) if a[i] in names))
EOF
)
echo "sgemm ceiling (vocab $V) ..." >&2
# shellcheck disable=SC2086
"$CEILING" --vocab "$V" $CFLAGS --reps 5 | tail -n 1 >"$WORK/ceiling.json"

last_json() { grep '^{' "$1" | tail -n 1; }

# Each run's row as soon as it ends; the table of medians follows at the end.
show_run() { # IMPL THREADS RUN JSON
    printf '%s\n' "$4" | "$PYTHON" -c '
import json, sys
impl, t, run = sys.argv[1:4]
r = json.load(sys.stdin)
tps, wait = r["tokens_per_s"], r.get("wait")
print(f"{impl:<8}{t:>8}{run:>8}{tps:>11.0f}" + (f"   OMP_WAIT_POLICY={wait}" if wait else ""),
      flush=True)' "$1" "$2" "$3"
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
echo "each run as it ends (tokens/s of the training loop):"
printf '%-8s%8s%8s%11s\n' impl threads run tokens/s
for t in $THREADS; do
    r=1
    while [ "$r" -le "$REPS" ]; do
        echo "threads $t, run $r/$REPS: charlm ..." >&2
        # shellcheck disable=SC2086
        "$BIN" train --corpus "$CORPUS" --out "$WORK/charlm" --steps "$STEPS" \
            --eval-every "$STEPS" --threads "$t" --seed 42 $EXTRA >"$WORK/out" 2>"$WORK/err" ||
            { cat "$WORK/err" >&2; exit 1; }
        line=$(last_json "$WORK/out")
        [ -n "$line" ] || line=$(tail -n 1 "$WORK/charlm/train_log.jsonl")
        echo "charlm $t $line" >>"$WORK/results"
        show_run charlm "$t" "$r/$REPS" "$line"
        variants=active
        [ "$t" -le 1 ] || variants=$TORCH_WAIT
        best=
        for w in $variants; do
            echo "threads $t, run $r/$REPS: torch (OpenMP wait policy $w) ..." >&2
            # shellcheck disable=SC2086
            OMP_WAIT_POLICY=$w "$PYTHON" "$ROOT/bench/torch_ref.py" --corpus "$CORPUS" \
                --out "$WORK/torch" --steps "$STEPS" --eval-every "$STEPS" --threads "$t" \
                --seed 42 $EXTRA >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
            line=$(last_json "$WORK/out" | sed "s/}\$/, \"wait\": \"$w\"}/")
            best=$(printf '%s\n%s\n' "$best" "$line" | "$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print(json.dumps(max(rows, key=lambda r: r["tokens_per_s"])))')
        done
        echo "torch $t $best" >>"$WORK/results"
        show_run torch "$t" "$r/$REPS" "$best"
        r=$((r + 1))
    done
done

LOAD1=$(cut -d' ' -f1 /proc/loadavg)
echo
"$PYTHON" - "$WORK/results" "$WORK/ceiling.json" "$STEPS" "$LOAD0" "$LOAD1" "$(nproc)" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    impl, t, js = line.split(" ", 2)
    rows.setdefault((impl, int(t)), []).append(json.loads(js)["tokens_per_s"])
ceil = json.load(open(sys.argv[2]))
per_token = ceil["flops_per_step"] / ceil["tokens_per_step"]
print(f"training throughput, {sys.argv[3]} steps, median of {len(next(iter(rows.values())))} "
      f"runs; sgemm FLOPs per step {ceil['flops_per_step'] / 1e9:.2f} G; load average "
      f"{sys.argv[4]} at start, {sys.argv[5]} at end, {sys.argv[6]} CPUs")
print(f"{'impl':<8}{'threads':>8}{'tokens/s':>11}{'GFLOP/s':>9}{'of ceiling':>12}"
      f"{'charlm/torch':>14}   runs")
for t in sorted({t for _, t in rows}):
    c = ceil["threads1" if t == 1 else "threads2"]
    med = {impl: statistics.median(rows[(impl, t)]) for impl in ("charlm", "torch")
           if (impl, t) in rows}
    for impl in ("charlm", "torch"):
        if impl not in med:
            continue
        m = med[impl]
        ratio = f"{med['charlm'] / med['torch']:.2f}x" if impl == "charlm" and "torch" in med else ""
        runs = " ".join(f"{x:.0f}" for x in rows[(impl, t)])
        print(f"{impl:<8}{t:>8}{m:>11.0f}{m * per_token / 1e9:>9.1f}{m / c['tokens_per_s']:>12.0%}"
              f"{ratio:>14}   {runs}")
    if t <= 2:
        print(f"{'sgemm':<8}{t:>8}{c['tokens_per_s']:>11.0f}{c['gflops']:>9.1f}{'100%':>12}")
EOF
