#!/usr/bin/python3
"""Checks `charlm-train eval` against PyTorch on the same weights and text.

    /usr/bin/python3 tests/reference/check_eval.py --bin build/charlm-train \\
        --model artefacts --corpus text.txt [--val-frac 0.1] [--tol 1e-4]

Loads vocab.json + model.safetensors into torch.nn.LSTM, scores the text the way
docs/CLI.md defines `charlm-train eval`, runs `charlm-train eval` on the same inputs and
asserts the two losses agree to --tol relative. Exit 0 on agreement, 1 otherwise.

The measure, as charlm implements it:
  - the text is decoded as Unicode code points (bytes are read as-is: no newline
    translation);
  - with --val-frac F only the last n_val = floor(n_chars * F) chars are scored
    (start = n_chars - n_val), matching the trainer's split;
  - chars not in the vocabulary are skipped: not fed, not scored, counted in "skipped";
  - ids = the in-vocab chars in order, one stream from the zero state, never reset;
    input ids[i-1] predicts ids[i] for i = 1 .. n-1, so "chars" = n - 1;
  - loss = mean cross-entropy in nats per char, bpc = loss / ln 2.
"""

import argparse
import json
import math
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import artefacts_load, stream_loss  # noqa: E402


def torch_eval(model_dir, corpus, val_frac):
    model, chars, _ = artefacts_load(model_dir)
    model.eval()
    with open(corpus, "rb") as f:
        text = f.read().decode("utf-8")
    if val_frac is not None:
        n_val = int(len(text) * val_frac)
        text = text[len(text) - n_val:]
    index = {c: i for i, c in enumerate(chars)}
    ids = [index[c] for c in text if c in index]
    skipped = len(text) - len(ids)
    total, count = stream_loss(model, ids)
    loss = total / count if count else float("nan")
    return {"loss": loss, "bpc": loss / math.log(2), "chars": count, "skipped": skipped}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--val-frac", type=float, default=None)
    ap.add_argument("--bin", required=True, help="path to charlm-train")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative tolerance on loss")
    args = ap.parse_args()
    torch.set_num_threads(1)

    ref = torch_eval(args.model, args.corpus, args.val_frac)
    cmd = [args.bin, "eval", "--model", args.model, "--corpus", args.corpus]
    if args.val_frac is not None:
        cmd += ["--val-frac", repr(args.val_frac)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        sys.exit(f"{' '.join(cmd)} exited {run.returncode}")
    lines = [ln for ln in run.stdout.splitlines() if ln.strip()]
    got = json.loads(lines[-1])

    print("torch  ", json.dumps(ref))
    print("charlm ", json.dumps(got))
    rel = abs(got["loss"] - ref["loss"]) / abs(ref["loss"])
    ok = rel <= args.tol and got["chars"] == ref["chars"] and got.get("skipped") == ref["skipped"]
    print(f"relative difference {rel:.2e} (tolerance {args.tol:g}); "
          f"chars {got['chars']} vs {ref['chars']}; skipped {got.get('skipped')} vs "
          f"{ref['skipped']} -> {'OK' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
