#!/usr/bin/python3
"""The PyTorch reference of charlm-train: same model, flags, data and training loop.

    /usr/bin/python3 bench/torch_ref.py --corpus text.txt --out /tmp/torch-model \\
        --steps 200 --threads 1

Loop (as charlm-train's): vocab = sorted distinct code points of the whole corpus; the
last floor(n * val_frac) chars are the validation split; each step draws B windows at
uniform random offsets in [0, n_train - T - 1] (inputs = window[0:T], targets =
window[1:T+1]), runs them from the zero state, takes the mean cross-entropy, clips the
global gradient norm, and makes an Adam step with the warmup + cosine learning rate.
Validation (every --eval-every steps and at the end) is the mean cross-entropy over the
whole split run as B contiguous streams from the zero state, carried across chunks of T.

Only the training steps are timed (evaluation excluded). The last stdout line is
{"impl": "torch", "steps", "tokens_per_s", "val_loss", "elapsed_s", "threads"}. The model
with the best validation loss is written to --out in charlm's artefacts format
(vocab.json byte-identical to charlm's + model.safetensors with its metadata), so
`charlm-train eval` scores both implementations on the same measure.
"""

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time


def _flag_from_argv(argv, name, default):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


# torch here runs its matrix products on Debian's OpenBLAS (pthreads build), whose thread
# count torch.set_num_threads does not control: fix it before torch loads OpenBLAS, so that
# "--threads 1" really is one core. With --threads 2, OpenBLAS's busy-waiting threads on
# top of torch's OpenMP ones collapse when the cores are shared with other work, so
# --blas-threads 1 (OpenMP-only parallelism) is offered too; bench/train_bench.sh keeps
# whichever is faster.
_THREADS = _flag_from_argv(sys.argv, "--threads", "1")
os.environ["OPENBLAS_NUM_THREADS"] = _flag_from_argv(sys.argv, "--blas-threads", _THREADS)
os.environ["OMP_NUM_THREADS"] = _THREADS

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from charlm_ref import CharLSTM, artefacts_save, lr_at, vocab_build  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description="PyTorch reference trainer for charlm")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=0, help="0 = only at the end")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="accepted, ignored")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OpenBLAS threads (default: --threads)")
    return ap.parse_args()


def val_loss(model, val_ids, T, B):
    """Mean CE over the split as B equal contiguous streams, state carried across chunks."""
    piece = len(val_ids) // B
    if piece < 2:
        streams, piece = 1, len(val_ids)
    else:
        streams = B
    data = torch.as_tensor(val_ids[:streams * piece], dtype=torch.long).view(streams, piece)
    data = data.t().contiguous()  # [piece, streams]
    total, count, state = 0.0, 0, None
    model.eval()
    with torch.no_grad():
        for s in range(0, piece - 1, T):
            e = min(s + T, piece - 1)
            logits, state = model(data[s:e], state)
            tgt = data[s + 1:e + 1]
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                     reduction="sum").item()
            count += tgt.numel()
    model.train()
    return total / count


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)
    rs = np.random.RandomState(args.seed)

    with open(args.corpus, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    chars = vocab_build(text)
    index = {c: i for i, c in enumerate(chars)}
    ids = np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    n = len(ids)
    n_train = n - int(n * args.val_frac)
    T, B = args.seq, args.batch
    if n_train < T + 1:
        sys.exit(f"{args.corpus}: training split ({n_train} chars) shorter than one sequence")
    train_ids, val_ids = ids[:n_train], ids[n_train:]

    model = CharLSTM(len(chars), args.embed, args.hidden, args.layers, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "train_log.jsonl"), "w")

    best, best_state = math.inf, None
    offsets_all = np.arange(T + 1)
    train_time = 0.0
    tokens = 0
    loss_v = float("nan")
    for step in range(args.steps):
        t0 = time.perf_counter()
        starts = rs.randint(0, n_train - T - 1 + 1, size=B)  # uniform in [0, n_train-T-1]
        win = torch.from_numpy(train_ids[starts[None, :] + offsets_all[:, None]])  # [T+1, B]
        inputs, targets = win[:T], win[1:]
        lr = lr_at(step, args.steps, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.reshape(T * B, -1), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        loss_v = loss.item()
        train_time += time.perf_counter() - t0
        tokens += T * B

        last = step + 1 == args.steps
        if last or (args.eval_every > 0 and (step + 1) % args.eval_every == 0):
            vl = val_loss(model, val_ids, T, B)
            if vl < best:
                best, best_state = vl, copy.deepcopy(model.state_dict())
            rec = {"step": step + 1, "train_loss": loss_v, "val_loss": vl, "lr": lr,
                   "tokens_per_s": tokens / train_time, "elapsed_s": train_time}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(f"step {step + 1}/{args.steps} loss {loss_v:.4f} val {vl:.4f} "
                  f"{tokens / train_time:.0f} tok/s", file=sys.stderr)
    log.close()

    model.load_state_dict(best_state)
    cfg = {"embed": args.embed, "hidden": args.hidden, "layers": args.layers}
    artefacts_save(args.out, model, chars, cfg, hashlib.sha256(raw).hexdigest(), args.steps,
                   best)
    print(json.dumps({"impl": "torch", "steps": args.steps,
                      "tokens_per_s": round(tokens / train_time, 1), "val_loss": round(best, 6),
                      "elapsed_s": round(train_time, 3), "threads": args.threads,
                      "blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"])}))


if __name__ == "__main__":
    main()
