#!/bin/sh
# charlm-train sample --prompt-file (the prompts batched through the model's batched step)
# against one `sample` per prompt, on the same prompts, parameters and seeds.
#
#   bench/prompt_file.sh [MODEL_DIR] [PROMPTS]      (default artefacts/, 64 prompts)
#
# Each prompt is a slice of text the model writes itself; every one asks MAX_TOKENS (200)
# chars at temperature 0.8 with its own seed. Prints prompts/s and chars/s of both ways
# (medians of REPS, 3) and their ratio, after checking that both give the same texts.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${1:-$ROOT/artefacts}
N=${2:-64}
BIN=${BIN:-$ROOT/build/charlm-train}
MAX_TOKENS=${MAX_TOKENS:-200}
REPS=${REPS:-3}
[ -x "$BIN" ] || { echo "prompt_file: $BIN is missing; build first (README, Building)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/prompt_file.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

"$BIN" sample --model "$MODEL" --prompt "" --max-tokens $((N * 20 + 20)) --seed 1 \
    >"$WORK/text" 2>/dev/null
python3 - "$WORK" "$N" "$MAX_TOKENS" <<'PY'
import json, sys
work, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
text = open(f"{work}/text", encoding="utf-8").read().replace("\n", " ")
with open(f"{work}/prompts.jsonl", "w", encoding="utf-8") as f:
    for i in range(n):
        f.write(json.dumps({"prompt": text[i * 20:i * 20 + 20], "max_tokens": m,
                            "temperature": 0.8, "seed": 1000 + i}) + "\n")
PY

now() { date +%s.%N; }
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg);" \
    "model $MODEL; $N prompts of 20 chars, $MAX_TOKENS chars each"
r=1
while [ $r -le "$REPS" ]; do
    t0=$(now)
    "$BIN" sample --model "$MODEL" --prompt-file "$WORK/prompts.jsonl" >"$WORK/batched" 2>/dev/null
    t1=$(now)
    : >"$WORK/single"
    python3 - "$WORK" "$BIN" "$MODEL" <<'PY'
import json, subprocess, sys
work, binary, model = sys.argv[1:4]
with open(f"{work}/single", "w", encoding="utf-8") as out:
    for line in open(f"{work}/prompts.jsonl", encoding="utf-8"):
        p = json.loads(line)
        r = subprocess.run([binary, "sample", "--model", model, "--prompt", p["prompt"],
                            "--max-tokens", str(p["max_tokens"]), "--temperature",
                            str(p["temperature"]), "--seed", str(p["seed"])],
                           capture_output=True, text=True, check=True)
        out.write(json.dumps(r.stdout[len(p["prompt"]):-1]) + "\n")
PY
    t2=$(now)
    echo "$t0 $t1 $t2" >>"$WORK/times"
    r=$((r + 1))
done
python3 - "$WORK" "$N" "$MAX_TOKENS" <<'PY'
import json, statistics, sys
work, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
batched = [json.loads(l)["text"] for l in open(f"{work}/batched", encoding="utf-8")]
single = [json.loads(l) for l in open(f"{work}/single", encoding="utf-8")]
if batched != single:
    sys.exit("prompt_file: the batched texts differ from one sample per prompt")
rows = [[float(x) for x in l.split()] for l in open(f"{work}/times")]
b = statistics.median(t1 - t0 for t0, t1, _ in rows)
s = statistics.median(t2 - t1 for _, t1, t2 in rows)
print(f"{'':<28}{'seconds':>9}{'prompts/s':>11}{'chars/s':>10}")
print(f"{'--prompt-file (batched)':<28}{b:>9.2f}{n / b:>11.1f}{n * m / b:>10.0f}")
print(f"{'one sample per prompt':<28}{s:>9.2f}{n / s:>11.1f}{n * m / s:>10.0f}")
print(f"batched {s / b:.1f}x the prompts/s of one at a time (same texts: checked); "
      f"medians of {len(rows)} runs")
PY
