#!/usr/bin/python3
"""Writes tests/reference/gpt_logprobs/: a tiny trained GPT and PyTorch's logprobs for it.

Regenerate (needs Debian's python3-torch; CI does not, the outputs are committed):

    /usr/bin/python3 tests/reference/make_gpt_logprob_fixture.py

The GPT counterpart of make_logprob_fixture.py, whose passage, scored text T and file
layout (expected.json's fields, the margin checks, float64 from the float32 weights) it
shares; tests/test_server_logprobs.c runs the same checks over both folders. The model is
make_gpt_fixture.py's module (nanoGPT's GPT): layers 2, heads 2, embed 24, block 16,
LayerNorm, bias 1, trained from nanoGPT's init with AdamW for STEPS steps on windows of
the passage repeated, without dropout, so that its distributions are far from uniform.

What is new is the context: a stream holds at most `block` chars. Every number here
follows charlm's context rule (docs/CLI.md, charlm-train eval): when the context is full
and one more char must be fed, it keeps its last floor(block/2) chars, fed again from
position 0, and goes on. T (315 chars, ~20 contexts) is scored that way, and the greedy
continuation of a prompt longer than the context is generated that way for GREEDY_STEPS
(> 2 x block) chars, so both cross the rule many times. Each row's logits are computed
afresh from the whole context the rule leaves (a causal model gives the same numbers as a
cache of it would).

Files written, and expected.json's fields, as make_logprob_fixture.py's, plus "block" in
expected.json. The model folder is what convert_nanogpt.py makes of the trained model
saved as nanoGPT's ckpt.pt and meta.pkl: charlm's GPT format (docs/FORMATS.md).
"""

import json
import math
import os
import pickle
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_nanogpt as conv  # noqa: E402
from charlm_ref import vocab_build  # noqa: E402
from make_gpt_fixture import Gpt  # noqa: E402
from make_logprob_fixture import PASSAGE, TEXT, TOL, TOPK, dump, top  # noqa: E402

SEED = 20261201
LAYERS, HEADS, EMBED, BLOCK = 2, 2, 24, 16
STEPS, LR, BATCH = 100, 1e-2, 16
GREEDY_STEPS = 2 * BLOCK + 8
# Longer than the context: the rule runs while the prompt is fed.
PROMPT = 'The cat said "Bonjour!" at nine and'

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gpt_logprobs")
NO_DROPOUT = {"emb": 1.0, "attn": [1.0] * LAYERS, "attn_resid": [1.0] * LAYERS,
              "mlp_resid": [1.0] * LAYERS}


def gpt2_init(model):
    """nanoGPT's: weights N(0, 0.02), c_proj's N(0, 0.02/sqrt(2 layers)), biases 0, norms 1."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("c_proj.weight") else 0.02
                p.normal_(0.0, std)
            elif name.endswith(".bias"):
                p.zero_()
            else:
                p.fill_(1.0)


def train(chars):
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in PASSAGE * 40], dtype=torch.long)
    model = Gpt(len(chars), EMBED, HEADS, LAYERS, BLOCK, rms=False, bias=True)
    gpt2_init(model)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=0.1)
    g = torch.Generator().manual_seed(SEED + 1)
    for step in range(STEPS):
        starts = torch.randint(0, len(data) - BLOCK - 1, (BATCH,), generator=g)
        x = torch.stack([data[s:s + BLOCK] for s in starts])
        y = torch.stack([data[s + 1:s + BLOCK + 1] for s in starts])
        loss = F.cross_entropy(model(x, NO_DROPOUT).reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f"step {step}: loss {loss.item():.4f}")
    return model, loss.item()


def save(model, chars, last_loss):
    """Writes the model folder the way a nanoGPT user gets one: ckpt.pt and meta.pkl as
    nanoGPT's train.py and prepare.py write them, converted by convert_nanogpt.py."""
    model_args = {"n_layer": LAYERS, "n_head": HEADS, "n_embd": EMBED, "block_size": BLOCK,
                  "bias": True, "vocab_size": len(chars), "dropout": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, meta = os.path.join(tmp, "ckpt.pt"), os.path.join(tmp, "meta.pkl")
        torch.save({"model": model.state_dict(), "model_args": model_args, "iter_num": STEPS,
                    "best_val_loss": last_loss}, ckpt)
        with open(meta, "wb") as f:
            pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                         "stoi": {c: i for i, c in enumerate(chars)}}, f)
        conv.to_charlm(ckpt, meta, OUT)


class Context:
    """A stream by charlm's context rule: feed(id) returns the log-softmax row [V], float64,
    of the logits after id, from the chars the stream holds."""

    def __init__(self, model):
        self.model = model
        self.ids = []

    def feed(self, i):
        if len(self.ids) == BLOCK:
            self.ids = self.ids[len(self.ids) - BLOCK // 2:]
        self.ids.append(i)
        with torch.no_grad():
            logits = self.model(torch.tensor([self.ids]), NO_DROPOUT)
        return F.log_softmax(logits[0, -1], dim=-1)


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    chars = vocab_build(PASSAGE)
    model, last_loss = train(chars)
    save(model, chars, last_loss)
    # Everything below comes from the float32 weights as stored, evaluated in float64.
    model = model.double().eval()
    index = {c: i for i, c in enumerate(chars)}

    with open(os.path.join(OUT, "text.txt"), "wb") as f:
        f.write(TEXT.encode("utf-8"))
    kept = [(off, c) for off, c in enumerate(TEXT) if c in index]
    ids = [index[c] for _, c in kept]
    if len(ids) < 5 * BLOCK:
        sys.exit("the text must be at least 5 contexts long")
    ctx = Context(model)
    logprob, tops = [None], [None]
    row = ctx.feed(ids[0])
    for i in range(1, len(ids)):
        logprob.append(float(row[ids[i]]))
        tops.append(top(row, chars, f"text position {i}"))
        row = ctx.feed(ids[i])
    nll = [-x for x in logprob[1:]]
    score = {"text": TEXT, "tokens": [c for _, c in kept], "ids": ids,
             "text_offset": [off for off, _ in kept], "logprob": logprob, "top": tops,
             "mean_nll": sum(nll) / len(nll), "chars": len(nll),
             "skipped": len(TEXT) - len(kept)}

    # Greedy: the prompt fed by the rule, then argmax fed back, by the rule too.
    if any(c not in index for c in PROMPT) or len(PROMPT) <= BLOCK:
        sys.exit("the prompt must be in the vocabulary and longer than the context")
    ctx = Context(model)
    for c in PROMPT:
        row = ctx.feed(index[c])
    g_ids, g_lp, g_top = [], [], []
    for step in range(GREEDY_STEPS):
        two = torch.topk(row, 2).values
        if (two[0] - two[1]).item() <= 1e-3:
            sys.exit(f"greedy step {step}: argmax leads by only {(two[0] - two[1]).item():.2e}")
        nxt = int(torch.argmax(row))
        g_ids.append(nxt)
        g_lp.append(float(row[nxt]))
        g_top.append(top(row, chars, f"greedy step {step}"))
        row = ctx.feed(nxt)
    greedy = {"prompt": PROMPT, "text": "".join(chars[i] for i in g_ids), "ids": g_ids,
              "logprob": g_lp, "top": g_top}

    expected = {"tolerance": TOL, "block": BLOCK, "vocab": chars, "score": score,
                "greedy": greedy}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        f.write(dump(expected) + "\n")
    lps = logprob[1:]
    print(f"wrote {OUT}: V={len(chars)}, {len(ids)} tokens of {len(TEXT)} chars, "
          f"mean nll {score['mean_nll']:.6f}, logprobs {min(lps):.3f} .. {max(lps):.3f}; "
          f"greedy {greedy['text']!r}")


if __name__ == "__main__":
    main()
