#!/usr/bin/env bash
# Installs what is missing, builds, and starts charlm-server on the shipped models at
# http://127.0.0.1:8080: the LSTM (artefacts/, the default) and the GPT (artefacts/gpt/),
# with training from the page and the fine-tuning API on (uploads, jobs and their models in
# ./training/). Extra arguments go to charlm-server (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target charlm-server charlm-train
exec build/charlm-server --model artefacts --model artefacts/gpt --training-dir training "$@"
