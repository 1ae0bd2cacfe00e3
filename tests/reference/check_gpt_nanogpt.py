#!/usr/bin/python3
"""Checks make_gpt_fixture.py's module against nanoGPT's own model.py (outside CI).

    /usr/bin/python3 tests/reference/check_gpt_nanogpt.py /path/to/nanoGPT [--tol 1e-6]

Loads the LayerNorm fixture's weights into nanoGPT's GPT (load_state_dict: the fixture
holds every tensor but the tied lm_head.weight and the causal-mask buffers), replaces its
nn.Dropout modules, in the order its forward calls them (transformer.drop, then per block
attn_dropout, resid_dropout, mlp.dropout), by multiplications with the fixture's stored
masks, and compares its logits, loss and every gradient with the fixture's. The RMSNorm
fixture has no nanoGPT counterpart (nanoGPT has no RMSNorm). Exit 0 on agreement.

Last run: nanoGPT 3adf61e (2025-11-12), Debian's torch 1.13 (nanoGPT's non-flash
attention path): identical bits, largest difference 0.
"""

import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from charlm_ref import st_load  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nanogpt", help="a nanoGPT checkout (the folder holding model.py)")
    ap.add_argument("--tol", type=float, default=1e-6,
                    help="largest difference allowed, relative to each tensor's largest value")
    args = ap.parse_args()
    sys.path.insert(0, args.nanogpt)
    import model as nanogpt  # noqa: E402

    t, meta = st_load(os.path.join(HERE, "gpt_layernorm.safetensors"))
    layers = int(meta["layers"])
    cfg = nanogpt.GPTConfig(block_size=int(meta["block"]), vocab_size=int(meta["vocab_size"]),
                            n_layer=layers, n_head=int(meta["heads"]), n_embd=int(meta["embed"]),
                            dropout=float(meta["dropout"]), bias=bool(int(meta["bias"])))
    gpt = nanogpt.GPT(cfg)
    state = {k: torch.tensor(v) for k, v in t.items() if k.startswith("transformer.")}
    missing, unexpected = gpt.load_state_dict(state, strict=False)
    if unexpected or any(not (k == "lm_head.weight" or k.endswith(".attn.bias")) for k in missing):
        sys.exit(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")

    masks = [torch.tensor(t["mask.emb"])]
    for i in range(layers):
        masks += [torch.tensor(t[f"mask.{k}"][i]) for k in ("attn", "attn_resid", "mlp_resid")]
    drops = [gpt.transformer.drop]
    for blk in gpt.transformer.h:
        drops += [blk.attn.attn_dropout, blk.attn.resid_dropout, blk.mlp.dropout]
    for drop, mask in zip(drops, masks):
        drop.forward = lambda x, mask=mask: x * mask

    gpt.train()
    logits, loss = gpt(torch.tensor(t["inputs"]).long(), torch.tensor(t["targets"]).long())
    loss.backward()
    checks = [("logits", logits.detach(), torch.tensor(t["logits"])),
              ("loss", loss.detach().reshape(1), torch.tensor(t["loss"]))]
    checks += [("grad." + n, p.grad, torch.tensor(t["grad." + n]))
               for n, p in gpt.named_parameters()]
    worst = 0.0
    for name, got, want in checks:
        d = ((got - want).abs().max() / want.abs().max()).item()
        worst = max(worst, d)
        if d > args.tol:
            sys.exit(f"{name}: differs by {d:.3g} of its scale (tolerance {args.tol})")
    print(f"nanoGPT agrees with the fixture on logits, loss and {len(checks) - 2} gradients: "
          f"largest difference {worst:.3g} of a tensor's scale")


if __name__ == "__main__":
    main()
