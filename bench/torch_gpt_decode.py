#!/usr/bin/python3
"""PyTorch decoding a charlm GPT model folder with a KV cache: the single-stream reference.

    /usr/bin/python3 bench/torch_gpt_decode.py --model DIR [--chars 1000] [--reps 3]
        [--prompt TEXT] [--temperature 0.8] [--threads 1]

Loads DIR's model.safetensors (nanoGPT's state_dict names, docs/FORMATS.md) into the GPT
of tests/reference/make_gpt_fixture.py's equations and writes --chars chars after the
prompt, one at a time, as a server stream does: the prompt is fed as one sequence (causal
attention inside it), then each new char is one step of one row whose attention reads the
keys and values cached for the positions before it. A full cache follows the context rule
(docs/CLI.md): the last floor(block / 2) chars are fed again from position 0 as a sequence,
and decoding goes on. Sampling: softmax(logits / temperature), torch.multinomial;
temperature 0 is greedy (argmax).

Timed: from the prompt's first char in to the last char out, under torch.inference_mode,
on --threads threads (OpenBLAS's and OpenMP's both fixed before torch loads). The last
stdout line is JSON: {"impl": "torch_kv", "chars_per_s" (median of the reps), "runs",
"chars", "threads", "prompt_chars", "shifts"}; --print-text writes the last run's text to
stderr.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time


def _flag(argv, name, default):
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


# As bench/torch_ref.py: Debian's torch runs its products on OpenBLAS, whose threads
# torch.set_num_threads does not control.
_THREADS = _flag(sys.argv, "--threads", "1")
os.environ["OPENBLAS_NUM_THREADS"] = _THREADS
os.environ["OMP_NUM_THREADS"] = _THREADS

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from charlm_ref import st_load  # noqa: E402

EPS_NORM = 1e-5


class KvGpt:
    """The GPT's weights and one stream's cache [L, 2, block, C]."""

    def __init__(self, tensors, meta):
        self.L, self.NH = int(meta["layers"]), int(meta["heads"])
        self.C, self.block = int(meta["embed"]), int(meta["block"])
        self.rms = meta.get("norm", "layernorm") == "rmsnorm"
        self.t = {k: torch.from_numpy(v) for k, v in tensors.items()}
        self.kv = torch.zeros(self.L, 2, self.block, self.C)
        self.pos = 0

    def _get(self, name):
        return self.t.get(name)

    def _norm(self, x, prefix):
        w = self.t[prefix + ".weight"]
        if self.rms:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS_NORM) * w
        return F.layer_norm(x, (self.C,), w, self._get(prefix + ".bias"), EPS_NORM)

    def feed(self, ids):
        """Feeds ids [T] at positions pos .. pos + T - 1; returns the last position's logits."""
        T, C, NH = len(ids), self.C, self.NH
        hs, p0 = C // NH, self.pos
        x = self.t["transformer.wte.weight"][ids] + self.t["transformer.wpe.weight"][p0:p0 + T]
        # Row t attends to cache positions 0 .. p0 + t.
        mask = torch.ones(T, p0 + T, dtype=torch.bool).tril(p0)
        for layer in range(self.L):
            h = f"transformer.h.{layer}."
            qkv = F.linear(self._norm(x, h + "ln_1"), self.t[h + "attn.c_attn.weight"],
                           self._get(h + "attn.c_attn.bias"))
            q, k, v = qkv.split(C, dim=1)
            self.kv[layer, 0, p0:p0 + T] = k
            self.kv[layer, 1, p0:p0 + T] = v
            keys = self.kv[layer, 0, :p0 + T].view(p0 + T, NH, hs).transpose(0, 1)
            vals = self.kv[layer, 1, :p0 + T].view(p0 + T, NH, hs).transpose(0, 1)
            att = (q.view(T, NH, hs).transpose(0, 1) @ keys.transpose(1, 2)) / math.sqrt(hs)
            if T > 1:
                att = att.masked_fill(~mask, float("-inf"))
            y = (F.softmax(att, dim=-1) @ vals).transpose(0, 1).reshape(T, C)
            x = x + F.linear(y, self.t[h + "attn.c_proj.weight"], self._get(h + "attn.c_proj.bias"))
            m = F.gelu(F.linear(self._norm(x, h + "ln_2"), self.t[h + "mlp.c_fc.weight"],
                                self._get(h + "mlp.c_fc.bias")))
            x = x + F.linear(m, self.t[h + "mlp.c_proj.weight"], self._get(h + "mlp.c_proj.bias"))
        self.pos += T
        last = self._norm(x[-1:], "transformer.ln_f")
        return (last @ self.t["transformer.wte.weight"].t())[0]


def feed_by_rule(model, ids):
    """Feeds ids [T] to the stream by the context rule; returns the last position's logits."""
    keep, i = model.block // 2, 0
    while True:
        chunk = ids[i:i + model.block - model.pos]
        logits = model.feed(torch.tensor(chunk))
        i += len(chunk)
        if i == len(ids):
            return logits
        model.pos = 0  # full with more to feed: the last floor(block / 2) chars again
        model.feed(torch.tensor(ids[i - keep:i]))


def generate(model, prompt_ids, chars, temperature, gen):
    """Writes chars chars after prompt_ids; returns (ids written, context shifts)."""
    model.pos = 0
    logits = feed_by_rule(model, prompt_ids)
    history, out, shifts = list(prompt_ids), [], 0
    for i in range(chars):
        if temperature == 0:
            nxt = int(torch.argmax(logits))
        else:
            nxt = int(torch.multinomial(F.softmax(logits / temperature, dim=-1), 1, generator=gen))
        out.append(nxt)
        history.append(nxt)
        if i + 1 == chars:
            break
        if model.pos == model.block:  # the context rule: the last floor(block / 2) fed again
            model.pos = 0
            model.feed(torch.tensor(history[-(model.block // 2) - 1:-1]))
            shifts += 1
        logits = model.feed(torch.tensor([nxt]))
    return out, shifts


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--chars", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt", default="It was on a dreary night of November")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--print-text", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    tensors, meta = st_load(os.path.join(args.model, "model.safetensors"))
    if meta.get("arch") != "gpt":
        sys.exit(f"torch_gpt_decode: {args.model} is not a GPT (arch {meta.get('arch')})")
    with open(os.path.join(args.model, "vocab.json"), encoding="utf-8") as f:
        chars = json.load(f)["chars"]
    index = {c: i for i, c in enumerate(chars)}
    prompt_ids = [index[c] for c in args.prompt if c in index]
    if not prompt_ids:
        sys.exit("torch_gpt_decode: the prompt has no char of the model's vocabulary")
    model = KvGpt(tensors, meta)

    runs = []
    with torch.inference_mode():
        model.feed(torch.tensor(prompt_ids))  # warm-up: the first call allocates
        for r in range(args.reps):
            gen = torch.Generator().manual_seed(args.seed + r)
            t0 = time.perf_counter()
            out, shifts = generate(model, prompt_ids, args.chars, args.temperature, gen)
            runs.append(len(out) / (time.perf_counter() - t0))
    if args.print_text:
        print(args.prompt + "".join(chars[i] for i in out), file=sys.stderr)
    print(json.dumps({"impl": "torch_kv", "chars_per_s": round(statistics.median(runs), 1),
                      "runs": [round(x, 1) for x in runs], "chars": args.chars,
                      "threads": args.threads, "prompt_chars": len(prompt_ids),
                      "shifts": shifts}))


if __name__ == "__main__":
    main()
