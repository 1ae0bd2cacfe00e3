#!/usr/bin/python3
"""Writes tests/reference/reg_fixture.safetensors: PyTorch's numbers for regularised training.

Regenerate (needs Debian's python3-torch; CI does not, the fixture is committed):

    /usr/bin/python3 tests/reference/make_reg_fixture.py

The model is make_fixture.py's tiny one (V=11, E=8, H=16, 2 layers, T=10, B=4) under
another seed. The dropout masks are drawn here and stored, and the C tests inject them
into the workspace, so the comparison does not depend on either side's generator:

  emb_mask  [V]         embedding dropout (p 0.3): whole rows of the embedding matrix are
                        zeroed or scaled by 1/(1-p), the same rows for every position
  var_in    [B, E]      variational dropout (p 0.4) on layer 0's input,
  var_mid   [L-1, B, H] on the input of each layer above 0,
  var_out   [B, H]      on the top layer's output: one mask per sequence (batch column),
                        the same at every time step

The forward pass is written out cell by cell (gate order i, f, g, o as nn.LSTM) so the
masks can go where charlm puts them; with all-ones masks it is checked here against
nn.LSTM. Two cases, each with logits, loss and gradients:

  emb.*  embedding dropout only
  all.*  embedding dropout and all three variational masks

Then AdamW: starting from the pre-step weights, three torch.optim.AdamW steps (lr 1e-2,
default betas/eps) each with the all.* gradients, weight decay WD on the LSTM and Linear
weight matrices and 0 on the biases and the embedding (charlm's rule), no clipping.

Tensors (all F32): <param> (pre-step, state_dict names), inputs, targets ([T, B] ids as
floats), the four masks, <case>.logits [T, B, V], <case>.loss [1], <case>.grad.<param>,
adamw.<param> (after the three steps). __metadata__: sizes, lr, weight_decay, adamw_steps.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import CharLSTM, st_save  # noqa: E402

V, E, H, L, T, B = 11, 8, 16, 2, 10, 4
P_EMB, P_VAR = 0.3, 0.4
LR, WD, ADAMW_STEPS = 1e-2, 0.5, 3
SEED = 4321


def dropout_mask(shape, p, gen):
    keep = (torch.rand(shape, generator=gen) >= p).float()
    return keep / (1.0 - p)


def forward(model, ids, emb_mask, var_in, var_mid, var_out):
    """logits [T, B, V] with the masks applied where charlm applies them."""
    weight = model.embedding.weight * emb_mask[:, None]
    x = F.embedding(ids, weight) * var_in[None]
    for l in range(L):
        w_ih = getattr(model.lstm, f"weight_ih_l{l}")
        w_hh = getattr(model.lstm, f"weight_hh_l{l}")
        b = getattr(model.lstm, f"bias_ih_l{l}") + getattr(model.lstm, f"bias_hh_l{l}")
        h = torch.zeros(B, H)
        c = torch.zeros(B, H)
        outs = []
        for t in range(T):
            gates = x[t] @ w_ih.T + h @ w_hh.T + b
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs)
        x = x * (var_mid[l][None] if l < L - 1 else var_out[None])
    return model.fc(x)


def run_case(model, ids, targets, masks):
    model.zero_grad()
    logits = forward(model, ids, *masks)
    loss = F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return logits.detach(), loss.detach().reshape(1), grads


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = CharLSTM(V, E, H, L)
    g = torch.Generator().manual_seed(SEED + 1)
    inputs = torch.randint(0, V, (T, B), generator=g)
    targets = torch.randint(0, V, (T, B), generator=g)
    emb_mask = dropout_mask((V,), P_EMB, g)
    var_in = dropout_mask((B, E), P_VAR, g)
    var_mid = dropout_mask((L - 1, B, H), P_VAR, g)
    var_out = dropout_mask((B, H), P_VAR, g)
    used = set(inputs.flatten().tolist())
    if not any(emb_mask[i] == 0 for i in used) or all(emb_mask[i] == 0 for i in used):
        sys.exit("the embedding mask must drop some but not all of the inputs' rows; "
                 "pick another seed")

    with torch.no_grad():
        ones = (torch.ones(V), torch.ones(B, E), torch.ones(L - 1, B, H), torch.ones(B, H))
        mine = forward(model, inputs, *ones)
        ref, _ = model(inputs)
        diff = (mine - ref).abs().max().item()
        if diff > 1e-5:
            sys.exit(f"the cell-by-cell forward differs from nn.LSTM by {diff}")

    names = [n for n, _ in model.named_parameters()]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ones_var = (torch.ones(B, E), torch.ones(L - 1, B, H), torch.ones(B, H))
    cases = {"emb": (emb_mask, *ones_var), "all": (emb_mask, var_in, var_mid, var_out)}
    results = {k: run_case(model, inputs, targets, m) for k, m in cases.items()}

    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and n != "embedding.weight"]
    other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and n != "embedding.weight")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": other, "weight_decay": 0.0}], lr=LR)
    all_grads = results["all"][2]
    for _ in range(ADAMW_STEPS):
        for n, p in model.named_parameters():
            p.grad = all_grads[n].clone()
        opt.step()

    tensors = {n: before[n] for n in names}
    tensors["inputs"] = inputs.float()
    tensors["targets"] = targets.float()
    tensors["emb_mask"] = emb_mask
    tensors["var_in"] = var_in
    tensors["var_mid"] = var_mid
    tensors["var_out"] = var_out
    for case, (logits, loss, grads) in results.items():
        tensors[case + ".logits"] = logits
        tensors[case + ".loss"] = loss
        for n in names:
            tensors[case + ".grad." + n] = grads[n]
    for n, p in model.named_parameters():
        tensors["adamw." + n] = p.detach()
    meta = {"vocab_size": V, "embed": E, "hidden": H, "layers": L, "seq": T, "batch": B,
            "lr": repr(LR), "weight_decay": repr(WD), "adamw_steps": ADAMW_STEPS}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reg_fixture.safetensors")
    st_save(out, tensors, meta)
    print(f"wrote {out}: loss emb {results['emb'][1].item():.6f}, "
          f"all {results['all'][1].item():.6f}; nn.LSTM check {diff:.2g}")


if __name__ == "__main__":
    main()
