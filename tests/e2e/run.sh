#!/usr/bin/env bash
# End-to-end tests with a tiny model, each starting its own charlm-server on a free port:
# the web page driven by Debian's chromium through playwright-core (tests/e2e/page.test.mjs,
# which also trains a second, smaller model for its model-picker test, and trains from the
# page's Train panel on a server with --training-dir),
# then the official OpenAI client, npm `openai`, against the /v1 routes
# (tests/e2e/openai.test.mjs) and driving fine-tuning jobs (tests/e2e/finetune.test.mjs).
#
#   npm ci                      # once: installs playwright-core and openai from package-lock.json
#   bash tests/e2e/run.sh       # uses BIN_DIR (default: build/) for charlm-server/-train
#
# Environment:
#   BIN_DIR         folder with charlm-server and charlm-train; default <repo>/build
#   E2E_MODEL_DIR   use this artefacts folder instead of training a tiny model (the second
#                   model of the picker test is trained all the same)
#   CHROMIUM        browser binary; default /usr/bin/chromium
# Builds nothing. Screenshots go to build/screenshot-desktop.png, build/screenshot-phone.png,
# build/screenshot-probabilities.png, build/screenshot-models.png and build/screenshot-train.png.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=${BIN_DIR:-$repo/build}
server=$bin_dir/charlm-server
train=$bin_dir/charlm-train
chromium=${CHROMIUM:-/usr/bin/chromium}

fail() {
    echo "tests/e2e/run.sh: $*" >&2
    exit 1
}

[ -x "$server" ] || fail "no charlm-server in $bin_dir (build first, or set BIN_DIR)"
[ -x "$train" ] || fail "no charlm-train in $bin_dir (build first, or set BIN_DIR)"
[ -x "$chromium" ] || fail "no browser at $chromium (apt-get install chromium)"
command -v node >/dev/null || fail "node is not installed (apt-get install nodejs npm)"
# Bookworm's own nodejs is 18: 18.15 has node:test's --test-reporter; playwright-core 1.61
# is the last whose engines accept 18 (it drives bookworm's chromium 156); openai declares
# no engines and needs node 20 only for file uploads (a global File), which no test makes.
# tests/test_e2e_deps.c checks package-lock.json's engines against this minimum.
node_ok=$(node -p 'const [a, b] = process.versions.node.split(".").map(Number); a > 18 || (a === 18 && b >= 15)')
[ "$node_ok" = true ] || fail "node $(node --version) is too old: the tests need node 18.15 or newer"
for pkg in playwright-core openai; do
    [ -f "$repo/node_modules/$pkg/package.json" ] || fail "$pkg missing: run 'npm ci' in $repo"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/charlm-e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -n "${E2E_MODEL_DIR:-}" ]; then
    model=$E2E_MODEL_DIR
else
    # A small corpus of our own, repeated so the tiny model learns something in a few
    # hundred steps (about a second); 20 evaluations give the chart 20 points per series.
    corpus=$work/corpus.txt
    for i in $(seq 1 40); do
        cat <<'EOF'
the cat sat on the mat and the dog sat on the log.
a small boat drifts past the old mill while the river runs slow and brown.
she counted the lanterns: one, two, three, four, five; then the wind put them out.
"where are you going?" asked the fox. "home," said the hare, "before the rain."
EOF
    done >"$corpus"
    model=$work/model
    echo "e2e: training a tiny model in $model" >&2
    "$train" train --corpus "$corpus" --out "$model" --hidden 32 --embed 16 --steps 400 \
        --eval-every 20 --seq 32 --batch 8 --threads 1 --seed 1 >"$work/train.log" 2>&1 ||
        { cat "$work/train.log" >&2; fail "charlm-train failed"; }
fi
for f in model.safetensors vocab.json train_log.jsonl; do
    [ -f "$model/$f" ] || fail "$model has no $f"
done

mkdir -p "$repo/build"
cd "$repo"
CHARLM_SERVER=$server CHARLM_TRAIN=$train E2E_MODEL_DIR=$model E2E_OUT_DIR=$repo/build \
    CHROMIUM=$chromium CHARLM_STATIC_DIR=$repo/static node --test-reporter=spec tests/e2e/page.test.mjs
CHARLM_SERVER=$server E2E_MODEL_DIR=$model node --test-reporter=spec tests/e2e/openai.test.mjs
CHARLM_SERVER=$server E2E_MODEL_DIR=$model node --test-reporter=spec tests/e2e/finetune.test.mjs
