#!/usr/bin/python3
"""Writes tests/reference/fixture.safetensors: PyTorch's numbers for a tiny model.

Regenerate (needs Debian's python3-torch; CI does not, the fixture is committed):

    /usr/bin/python3 tests/reference/make_fixture.py

The C parity test loads the PRE-step weights and the batch, runs charlm's forward,
backward, clipping and one Adam step, and compares with what PyTorch computed here.

Model: Embedding(V, E) -> nn.LSTM(E, H, 2 layers, time-major) -> Linear(H, V) with
V=11, E=8, H=16, T=10, B=4, torch's default init under a fixed seed. One step:
logits [T, B, V] from the zero state, loss = mean cross-entropy over T*B positions,
backward, clip_grad_norm_(clip=0.1) (the total norm, ~0.25, is checked to exceed the clip, so
clipping really happens), then one torch.optim.Adam step (lr 1e-2, default betas/eps).
Everything is float32, as in C.

Tensors in the file (all F32):
  <param>          the parameters before the step, PyTorch state_dict names
  inputs, targets  [T, B] token ids stored as floats
  logits           [T, B, V]
  loss             [1]
  grad.<param>     gradients before clipping
  grad_norm        [1] global L2 norm of the gradients before clipping
  adam.<param>     parameters after clipping + one Adam step
__metadata__: vocab_size, embed, hidden, layers, seq, batch, lr, clip.
"""

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import CharLSTM, st_save  # noqa: E402

V, E, H, L, T, B = 11, 8, 16, 2, 10, 4
LR, CLIP = 1e-2, 0.1
SEED = 1234


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = CharLSTM(V, E, H, L)
    g = torch.Generator().manual_seed(SEED + 1)
    inputs = torch.randint(0, V, (T, B), generator=g)
    targets = torch.randint(0, V, (T, B), generator=g)

    names = [n for n, _ in model.named_parameters()]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    logits, _ = model(inputs)
    loss = F.cross_entropy(logits.reshape(T * B, V), targets.reshape(T * B))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    if not norm.item() > CLIP * 1.5:
        sys.exit(f"gradient norm {norm.item():.4f} does not exceed the clip {CLIP} clearly; "
                 "pick a smaller clip")
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    opt.step()

    tensors = {}
    for n in names:
        tensors[n] = before[n]
    tensors["inputs"] = inputs.float()
    tensors["targets"] = targets.float()
    tensors["logits"] = logits.detach()
    tensors["loss"] = loss.detach().reshape(1)
    for n in names:
        tensors["grad." + n] = grads[n]
    tensors["grad_norm"] = norm.detach().reshape(1)
    for n, p in model.named_parameters():
        tensors["adam." + n] = p.detach()
    meta = {"vocab_size": V, "embed": E, "hidden": H, "layers": L, "seq": T, "batch": B,
            "lr": repr(LR), "clip": repr(CLIP)}
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixture.safetensors")
    st_save(out, tensors, meta)
    print(f"wrote {out}: loss {loss.item():.6f}, grad norm {norm.item():.6f} (clip {CLIP})")


if __name__ == "__main__":
    main()
