#!/usr/bin/python3
"""Writes tests/reference/gpt_{layernorm,rmsnorm}.safetensors: PyTorch's numbers for a tiny GPT.

Regenerate (needs Debian's python3-torch; CI does not, the fixtures are committed):

    /usr/bin/python3 tests/reference/make_gpt_fixture.py

The model is this file's own module, written to compute what nanoGPT's model.py GPT
computes (its non-flash attention path, which is the one that takes a dropout mask;
check_gpt_nanogpt.py runs nanoGPT's own model.py on the LayerNorm fixture to confirm it):

    x = drop(wte[idx] + wpe[pos])
    each of `layers` blocks:  x = x + drop(c_proj(attn(norm_1(x))))
                              x = x + drop(mlp_c_proj(gelu(c_fc(norm_2(x)))))
    logits = norm_f(x) @ wte^T          (the output layer tied to wte, no bias)

attn: one fused c_attn C -> 3C (q, k, v), `heads` heads of C/heads, softmax(q k^T /
sqrt(C/heads)) under the causal mask, dropout on those probabilities, then @ v. gelu is
the exact (erf) one. norm is LayerNorm (eps 1e-5, a bias when bias=1) or RMSNorm
(x / sqrt(mean(x^2) + 1e-5) * weight, never a bias). bias=1 gives every Linear a bias.

Two fixtures: "layernorm" (LayerNorm, bias=1, T = block) and "rmsnorm" (RMSNorm, bias=0,
T < block, so the rows of wpe past T take no gradient).

Weights: GPT-2's init (N(0, 0.02), every c_proj.weight N(0, 0.02/sqrt(2 layers)),
biases 0, norm weights 1) leaves a model this small almost uniform: attention would be an
average and the q, k gradients tiny next to the v ones, so a wrong attention backward
would hide under the tolerance. The fixture therefore scales every weight drawn by that
init by 10 and draws the norm weights from 1 + N(0, 0.2) and the biases from N(0, 0.2).
(The C suite checks the GPT-2 init itself separately.)

Dropout (p = 0.1) is on everywhere nanoGPT has it, with masks drawn here and stored, holding
0 or 1/(1-p) as torch's dropout does, so C multiplies by exactly the same factors:
  mask.emb         [B, T, C]           after wte + wpe
  mask.attn        [L, B, heads, T, T] on the attention probabilities
  mask.attn_resid  [L, B, T, C]        after attn.c_proj
  mask.mlp_resid   [L, B, T, C]        after mlp.c_proj
The same masks serve all three optimiser steps (each step recomputes forward and backward
on the same batch with the same masks, from the parameters of the step before).

Optimiser: torch.optim.AdamW with nanoGPT's groups (every parameter of 2 or more dimensions
decayed, embeddings included; biases and norm weights not), betas (0.9, 0.99), eps 1e-8,
weight_decay 0.1, a fixed lr, clip_grad_norm_(1.0) before each step (the gradient norm is
checked to exceed it at step 1, so clipping really happens). Everything is float32.

Tensors in each file (all F32):
  <param>                the parameters before step 1, nanoGPT state_dict names
                         (lm_head.weight is tied to transformer.wte.weight, not stored)
  inputs, targets        [B, T] token ids stored as floats
  mask.*                 as above
  logits                 [B, T, V] before step 1
  loss                   [1] mean cross-entropy over the B*T positions, before step 1
  grad.<param>           gradients before step 1 (before clipping)
  grad_norm              [1] their global L2 norm
  step{k}.loss           [1] the loss of step k's forward (k = 1, 2, 3; step1.loss = loss)
  step{k}.<param>        the parameters after step k
__metadata__: vocab_size, layers, heads, embed, block, norm, bias, seq, batch, dropout,
lr, beta1, beta2, eps, weight_decay, clip.
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import st_save  # noqa: E402

EPS_NORM = 1e-5
P_DROP = 0.1
LR, BETAS, EPS, WD, CLIP = 1e-2, (0.9, 0.99), 1e-8, 0.1, 1.0
STEPS = 3


class Norm(nn.Module):
    def __init__(self, C, rms, bias):
        super().__init__()
        self.rms = rms
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias and not rms else None

    def forward(self, x):
        if self.rms:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS_NORM) * self.weight
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, EPS_NORM)


class Attention(nn.Module):
    def __init__(self, C, heads, bias):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)

    def forward(self, x, attn_mask, resid_mask):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.heads
        q = q.view(B, T, self.heads, hs).transpose(1, 2)
        k = k.view(B, T, self.heads, hs).transpose(1, 2)
        v = v.view(B, T, self.heads, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1) * attn_mask
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y) * resid_mask


class Mlp(nn.Module):
    def __init__(self, C, bias):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.c_proj = nn.Linear(4 * C, C, bias=bias)

    def forward(self, x, resid_mask):
        return self.c_proj(F.gelu(self.c_fc(x))) * resid_mask


class Block(nn.Module):
    def __init__(self, C, heads, rms, bias):
        super().__init__()
        self.ln_1 = Norm(C, rms, bias)
        self.attn = Attention(C, heads, bias)
        self.ln_2 = Norm(C, rms, bias)
        self.mlp = Mlp(C, bias)

    def forward(self, x, m_attn, m_attn_resid, m_mlp_resid):
        x = x + self.attn(self.ln_1(x), m_attn, m_attn_resid)
        return x + self.mlp(self.ln_2(x), m_mlp_resid)


class Gpt(nn.Module):
    def __init__(self, V, C, heads, layers, block, rms, bias):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C),
            wpe=nn.Embedding(block, C),
            h=nn.ModuleList([Block(C, heads, rms, bias) for _ in range(layers)]),
            ln_f=Norm(C, rms, bias)))

    def forward(self, idx, masks):
        B, T = idx.shape
        t = self.transformer
        x = (t.wte(idx) + t.wpe(torch.arange(T))) * masks["emb"]
        for i, blk in enumerate(t.h):
            x = blk(x, masks["attn"][i], masks["attn_resid"][i], masks["mlp_resid"][i])
        return t.ln_f(x) @ t.wte.weight.t()


def init_weights(model, layers, g):
    """GPT-2's init, then livened up as the docstring says."""
    for name, p in model.named_parameters():
        with torch.no_grad():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("c_proj.weight") else 0.02
                p.copy_(torch.randn(p.shape, generator=g) * std * 10)
            elif ".ln_" in name and name.endswith(".weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def dropout_mask(shape, g):
    keep = torch.rand(shape, generator=g) >= P_DROP
    return keep.float() / (1 - P_DROP)


def make(label, V, C, heads, layers, block, T, B, rms, bias, seed):
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Gpt(V, C, heads, layers, block, rms, bias)
    init_weights(model, layers, g)
    inputs = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    masks = {"emb": dropout_mask((B, T, C), g),
             "attn": dropout_mask((layers, B, heads, T, T), g),
             "attn_resid": dropout_mask((layers, B, T, C), g),
             "mlp_resid": dropout_mask((layers, B, T, C), g)}

    names = [n for n, _ in model.named_parameters()]
    tensors = {n: p.detach().clone() for n, p in model.named_parameters()}
    tensors["inputs"] = inputs.float()
    tensors["targets"] = targets.float()
    for k, m in masks.items():
        tensors["mask." + k] = m

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS, foreach=False)
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        logits = model(inputs, masks)
        loss = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(B * T))
        loss.backward()
        if step == 1:
            tensors["logits"] = logits.detach().clone()
            tensors["loss"] = loss.detach().reshape(1).clone()
            for n, p in model.named_parameters():
                tensors["grad." + n] = p.grad.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        if step == 1:
            if not norm.item() > CLIP * 1.5:
                sys.exit(f"{label}: gradient norm {norm.item():.4f} does not clearly exceed "
                         f"the clip {CLIP}")
            tensors["grad_norm"] = norm.detach().reshape(1).clone()
        opt.step()
        tensors[f"step{step}.loss"] = loss.detach().reshape(1).clone()
        for n, p in model.named_parameters():
            tensors[f"step{step}.{n}"] = p.detach().clone()
        print(f"{label} step {step}: loss {loss.item():.6f}, grad norm {norm.item():.4f}")

    for n in names:
        assert not torch.equal(tensors["grad." + n], torch.zeros_like(tensors["grad." + n])), n
    meta = {"vocab_size": V, "layers": layers, "heads": heads, "embed": C, "block": block,
            "norm": "rmsnorm" if rms else "layernorm", "bias": int(bias), "seq": T,
            "batch": B, "dropout": repr(P_DROP), "lr": repr(LR), "beta1": repr(BETAS[0]),
            "beta2": repr(BETAS[1]), "eps": repr(EPS), "weight_decay": repr(WD),
            "clip": repr(CLIP)}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"gpt_{label}.safetensors")
    st_save(out, tensors, meta)
    print(f"wrote {out}")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    make("layernorm", V=11, C=16, heads=2, layers=2, block=8, T=8, B=3, rms=False, bias=True,
         seed=1919)
    make("rmsnorm", V=11, C=16, heads=4, layers=2, block=8, T=6, B=3, rms=True, bias=False,
         seed=2020)


if __name__ == "__main__":
    main()
