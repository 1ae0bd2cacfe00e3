#!/usr/bin/python3
"""The PyTorch reference of charlm-train: same model, flags, data and training loop.

    /usr/bin/python3 bench/torch_ref.py --corpus text.txt --out /tmp/torch-model \\
        --steps 200 --threads 1
    /usr/bin/python3 bench/torch_ref.py --arch gpt --corpus text.txt --out /tmp/torch-gpt \\
        --layers 4 --heads 4 --embed 256 --block 128 --batch 32 --steps 20 --threads 1

Loop (as charlm-train's): vocab = sorted distinct code points of the whole corpus; the
last floor(n * val_frac) chars are the validation split; each step draws B windows at
uniform random offsets in [0, n_train - T - 1] (inputs = window[0:T], targets =
window[1:T+1]), runs them from the zero state, takes the mean cross-entropy, clips the
global gradient norm, and makes an Adam step with the warmup + cosine learning rate.
Validation (every --eval-every steps and at the end) is the mean cross-entropy over the
whole split run as B contiguous streams from the zero state, carried across chunks of T.

--arch gpt trains nanoGPT's GPT (model.py, written here as on PyTorch < 2, which has no
flash attention: masked softmax of q k^T, dropout, @ v) with the flags of `charlm-train
train --arch gpt`: --layers, --heads, --embed (C), --block (the context and the window
length T; there is no --seq), --dropout, --bias 0|1, --norm layernorm|rmsnorm (the
fixture's Norm, tests/reference/make_gpt_fixture.py), --batch, --lr, --clip,
--weight-decay, --beta2. GPT-2's init (N(0, 0.02), c_proj.weight N(0, 0.02/sqrt(2
layers)), biases 0, norm weights 1); the output layer is wte. The step is nanoGPT's:
windows [B, T] drawn as above, mean cross-entropy, clip_grad_norm_, torch.optim.AdamW with
nanoGPT's groups (every parameter of two or more dimensions decayed, the others not),
betas (0.9, --beta2), the warmup + cosine schedule above. Validation: the split scored by
the context rule (windows of T chars with a stride of T - T//2, each char predicted once).
The files written are model.safetensors with nanoGPT's names (lm_head.weight, tied, not
stored) and metadata arch=gpt, and vocab.json.

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
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from charlm_ref import (CharLSTM, artefacts_save, lr_at, st_save, vocab_build,  # noqa: E402
                        vocab_json_bytes)
from make_gpt_fixture import Norm  # noqa: E402

# Defaults per architecture for the flags both share, charlm-train's for each.
DEFAULTS = {
    "lstm": {"embed": 64, "layers": 1, "batch": 64, "lr": 2e-3, "clip": 5.0},
    "gpt": {"embed": 128, "layers": 4, "batch": 32, "lr": 1e-3, "clip": 1.0},
}


def parse_args():
    ap = argparse.ArgumentParser(description="PyTorch reference trainer for charlm")
    ap.add_argument("--arch", choices=("lstm", "gpt"), default="lstm")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--embed", type=int, default=None)
    ap.add_argument("--hidden", type=int, default=256, help="LSTM")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seq", type=int, default=128, help="LSTM")
    ap.add_argument("--heads", type=int, default=4, help="GPT")
    ap.add_argument("--block", type=int, default=128, help="GPT: context and window length")
    ap.add_argument("--bias", type=int, choices=(0, 1), default=0, help="GPT")
    ap.add_argument("--norm", choices=("layernorm", "rmsnorm"), default="layernorm", help="GPT")
    ap.add_argument("--weight-decay", type=float, default=0.1, help="GPT (AdamW)")
    ap.add_argument("--beta2", type=float, default=0.99, help="GPT (AdamW)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--clip", type=float, default=None)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=0, help="0 = only at the end")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="accepted, ignored")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="OpenBLAS threads (default: --threads)")
    args = ap.parse_args()
    for k, v in DEFAULTS[args.arch].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


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


# ---------------------------------------------------------------------------- the GPT


class CausalSelfAttention(nn.Module):
    def __init__(self, C, heads, block, bias, dropout):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        # True above the diagonal: what a position may not attend to.
        above = ~torch.tril(torch.ones(block, block, dtype=torch.bool))
        self.register_buffer("above", above, persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.heads, hs).transpose(1, 2)
        k = k.view(B, T, self.heads, hs).transpose(1, 2)
        v = v.view(B, T, self.heads, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.above[:T, :T], float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Mlp(nn.Module):
    def __init__(self, C, bias, dropout):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * C, C, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, C, heads, block, rms, bias, dropout):
        super().__init__()
        self.ln_1 = Norm(C, rms, bias)
        self.attn = CausalSelfAttention(C, heads, block, bias, dropout)
        self.ln_2 = Norm(C, rms, bias)
        self.mlp = Mlp(C, bias, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Gpt(nn.Module):
    """nanoGPT's GPT; the output layer is wte itself (tied), so the state_dict has no
    lm_head.weight."""

    def __init__(self, V, C, heads, layers, block, rms, bias, dropout):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C),
            wpe=nn.Embedding(block, C),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([Block(C, heads, block, rms, bias, dropout) for _ in range(layers)]),
            ln_f=Norm(C, rms, bias)))
        with torch.no_grad():  # GPT-2's init
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    p.normal_(0.0, 0.02 / math.sqrt(2 * layers))
                elif p.dim() >= 2:
                    p.normal_(0.0, 0.02)
                elif ".ln_" in name and name.endswith(".weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()

    def forward(self, idx):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe(torch.arange(idx.shape[1])))
        for blk in t.h:
            x = blk(x)
        return F.linear(t.ln_f(x), t.wte.weight)


def gpt_val_loss(model, val_ids, T, B):
    """Mean CE over the split by the context rule: windows of T chars at a stride of
    S = T - T//2; the first window's every position counts, each later one's last S."""
    S, n = T - T // 2, len(val_ids)
    x = torch.as_tensor(val_ids, dtype=torch.long)
    wins, s = [], 0
    while s < n - 1:
        wins.append((s, min(T, n - 1 - s), 0 if s == 0 else T - S))
        if s + T >= n - 1:
            break
        s += S
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        # Full windows in batches of B; a short last one alone.
        full = [w for w in wins if w[1] == T]
        groups = [full[i:i + B] for i in range(0, len(full), B)]
        groups += [[w] for w in wins if w[1] < T]
        for g in groups:
            length = g[0][1]
            inp = torch.stack([x[s:s + length] for s, _, _ in g])
            tgt = torch.stack([x[s + 1:s + 1 + length] for s, _, _ in g])
            ce = F.cross_entropy(model(inp).transpose(1, 2), tgt, reduction="none")  # [b, len]
            for row, (_, _, first) in zip(ce, g):
                total += row[first:].sum().item()
                count += length - first
    model.train()
    return total / count


def gpt_save(model_dir, model, chars, args, corpus_sha256, best_val_loss):
    """vocab.json, then model.safetensors with nanoGPT's names and arch=gpt metadata."""
    os.makedirs(model_dir, exist_ok=True)
    vbytes = vocab_json_bytes(chars)
    with open(os.path.join(model_dir, "vocab.json"), "wb") as f:
        f.write(vbytes)
    meta = {"arch": "gpt", "layers": args.layers, "heads": args.heads, "embed": args.embed,
            "block": args.block, "norm": args.norm, "bias": args.bias,
            "vocab_size": len(chars), "vocab_sha256": hashlib.sha256(vbytes).hexdigest(),
            "corpus_sha256": corpus_sha256, "steps": args.steps,
            "best_val_loss": repr(float(best_val_loss))}
    st_save(os.path.join(model_dir, "model.safetensors"), model.state_dict(), meta)


def train_gpt(args, rs, raw, chars, train_ids, val_ids):
    T, B, n_train = args.block, args.batch, len(train_ids)
    if args.embed % args.heads:
        sys.exit(f"--heads {args.heads} does not divide --embed {args.embed}")
    model = Gpt(len(chars), args.embed, args.heads, args.layers, args.block,
                args.norm == "rmsnorm", bool(args.bias), args.dropout)
    params = list(model.parameters())
    opt = torch.optim.AdamW([
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, args.beta2))
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "train_log.jsonl"), "w")

    best, best_state = math.inf, None
    offsets_all = np.arange(T + 1)
    train_time, tokens, loss_v = 0.0, 0, float("nan")
    for step in range(args.steps):
        t0 = time.perf_counter()
        starts = rs.randint(0, n_train - T - 1 + 1, size=B)  # uniform in [0, n_train-T-1]
        win = torch.from_numpy(train_ids[starts[:, None] + offsets_all[None, :]])  # [B, T+1]
        inputs, targets = win[:, :T], win[:, 1:]
        lr = lr_at(step, args.steps, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        loss_v = loss.item()
        train_time += time.perf_counter() - t0
        tokens += T * B

        last = step + 1 == args.steps
        if last or (args.eval_every > 0 and (step + 1) % args.eval_every == 0):
            vl = gpt_val_loss(model, val_ids, T, B)
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
    gpt_save(args.out, model, chars, args, hashlib.sha256(raw).hexdigest(), best)
    result_print(args, tokens, train_time, best)


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
    T = args.block if args.arch == "gpt" else args.seq
    if n_train < T + 1:
        sys.exit(f"{args.corpus}: training split ({n_train} chars) shorter than one sequence")
    (train_gpt if args.arch == "gpt" else train_lstm)(args, rs, raw, chars, ids[:n_train],
                                                      ids[n_train:])


def train_lstm(args, rs, raw, chars, train_ids, val_ids):
    T, B, n_train = args.seq, args.batch, len(train_ids)
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
    result_print(args, tokens, train_time, best)


def result_print(args, tokens, train_time, best):
    """The last stdout line, the one bench/train_bench.sh reads."""
    print(json.dumps({"impl": "torch", "arch": args.arch, "steps": args.steps,
                      "tokens_per_s": round(tokens / train_time, 1), "val_loss": round(best, 6),
                      "elapsed_s": round(train_time, 3), "threads": args.threads,
                      "blas_threads": int(os.environ["OPENBLAS_NUM_THREADS"])}))


if __name__ == "__main__":
    main()
