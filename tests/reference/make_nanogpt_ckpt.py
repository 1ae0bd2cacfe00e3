#!/usr/bin/python3
"""Writes tests/reference/nanogpt_converted/: a nanoGPT checkpoint converted to charlm.

Regenerate (needs Debian's python3-torch; CI does not, the folder is committed):

    /usr/bin/python3 tests/reference/make_nanogpt_ckpt.py [--keep DIR] [--nanogpt PATH]

1. Trains a small GPT (make_gpt_fixture.py's module, with nanoGPT's tied lm_head and, as
   nanoGPT registers them under PyTorch < 2.0, the attn.bias causal-mask buffers) for a
   few AdamW steps on tests/reference/nanogpt_text.txt, from make_gpt_fixture.py's
   livened-up init (norm weights 1 + N(0, 0.2), biases N(0, 0.2)), so that no LayerNorm
   weight is 1 nor bias 0 and the loss depends on every tensor.
2. Saves it as nanoGPT's train.py does: ckpt.pt = {'model' (keys prefixed '_orig_mod.', as
   after torch.compile), 'optimizer', 'model_args', 'iter_num', 'best_val_loss', 'config'}
   and meta.pkl = {'vocab_size', 'itos', 'stoi'} as data/shakespeare_char/prepare.py
   builds it (sorted characters). Into a temp folder, or DIR with --keep.
3. Converts them with convert_nanogpt.py (its command line) into nanogpt_converted/
   (vocab.json + model.safetensors) and checks: the files hold exactly the weights; a
   checkpoint whose itos is shuffled (wte rows shuffled alike) converts to the same bytes;
   meta.pkl entries that are not one character, an lm_head.weight that is not wte, and a
   wrong attn.bias are refused; and, when build/charlm-train exists, that vocab.json is
   byte for byte what charlm-train writes for the same text.
4. Writes nanogpt_converted/expected.json: the text's mean loss in nats per char under
   PyTorch by charlm's context rule, read back from the converted folder's weights. The
   rule: windows of `block` input chars at a stride of block - floor(block/2); the first
   window scores all its predictions, each later one only its last block - floor(block/2),
   so every char after the first is predicted exactly once (tests/test_convert.c checks
   charlm against it; so does this script with build/charlm-train eval, when built).
5. Round trip: convert_nanogpt.py --to-nanogpt of the folder, with and without the mask
   buffers, loads with load_state_dict(strict=True) into the module (with and without the
   buffers) and gives bit-identical logits. With --nanogpt PATH (a nanoGPT checkout) it
   also loads into nanoGPT's own model.py GPT and compares its logits.
"""

import argparse
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import convert_nanogpt as conv  # noqa: E402
from charlm_ref import st_load, vocab_json_bytes  # noqa: E402
from make_gpt_fixture import Gpt, init_weights  # noqa: E402

TEXT = "nanogpt_text.txt"
OUT = os.path.join(HERE, "nanogpt_converted")
LAYERS, HEADS, EMBED, BLOCK, BIAS = 2, 2, 24, 16, True
SEED, STEPS, BATCH, LR = 1919, 150, 8, 3e-3


class NanoGpt(Gpt):
    """The module with nanoGPT's state_dict: lm_head tied to wte, optionally the masks."""

    def __init__(self, V, mask_buffers):
        super().__init__(V, EMBED, HEADS, LAYERS, BLOCK, rms=False, bias=BIAS)
        self.lm_head = nn.Linear(EMBED, V, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        if mask_buffers:
            for blk in self.transformer.h:
                blk.attn.register_buffer("bias", conv.causal_mask(BLOCK))

    def logits(self, idx):
        ones = [1.0] * LAYERS
        return self(idx, {"emb": 1.0, "attn": ones, "attn_resid": ones, "mlp_resid": ones})


def context_rule_loss(model, ids, block):
    """Mean nats per char of ids by charlm's context rule (see the docstring)."""
    keep = block // 2
    stride = block - keep
    n = len(ids)
    x = torch.tensor(ids, dtype=torch.long)
    total, count, s = 0.0, 0, 0
    with torch.no_grad():
        while True:
            end = min(s + block, n - 1)
            logits = model.logits(x[s:end].view(1, -1))[0]
            ce = F.cross_entropy(logits.double(), x[s + 1:end + 1], reduction="none")
            first = 0 if s == 0 else keep
            total += ce[first:].sum().item()
            count += end - s - first
            if end == n - 1:
                break
            s += stride
    assert count == n - 1, (count, n)
    return total / count


def train(model, ids, g):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": rest, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.99))
    x = torch.tensor(ids, dtype=torch.long)
    for _ in range(STEPS):
        starts = torch.randint(0, len(ids) - BLOCK, (BATCH,), generator=g)
        inp = torch.stack([x[s:s + BLOCK] for s in starts])
        tgt = torch.stack([x[s + 1:s + 1 + BLOCK] for s in starts])
        loss = F.cross_entropy(model.logits(inp).reshape(-1, model.lm_head.weight.shape[0]),
                               tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return opt, loss.item()


def save_nanogpt(model, opt, chars, last_loss, ckpt_path, meta_path):
    model_args = {"n_layer": LAYERS, "n_head": HEADS, "n_embd": EMBED, "block_size": BLOCK,
                  "bias": BIAS, "vocab_size": len(chars), "dropout": 0.0}
    config = dict(model_args, dataset="interop_fixture", batch_size=BATCH, learning_rate=LR,
                  max_iters=STEPS, beta2=0.99, weight_decay=0.1, grad_clip=1.0, compile=True)
    torch.save({"model": {conv.PREFIX + k: v for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "model_args": model_args, "iter_num": STEPS,
                "best_val_loss": torch.tensor(last_loss), "config": config}, ckpt_path)
    with open(meta_path, "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                     "stoi": {c: i for i, c in enumerate(chars)}}, f)


def convert_cli(*args):
    cmd = [sys.executable, os.path.join(HERE, "convert_nanogpt.py"), *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return r.stdout


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def expect_refused(what, needle, fn):
    try:
        fn()
    except conv.ConvertError as e:
        if needle not in str(e):
            sys.exit(f"{what}: refused, but the message does not say {needle!r}: {e}")
        print(f"refused as it should be, {what}: {e}")
        return
    sys.exit(f"{what}: converted, should have been refused")


def check_refusals(tmp, ckpt_path, meta_path, chars):
    ckpt = torch.load(ckpt_path)
    bad_meta = os.path.join(tmp, "bad_meta.pkl")
    itos = dict(enumerate(chars))
    itos[3] = "ab"
    with open(bad_meta, "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos}, f)
    expect_refused("an itos entry of two chars", "not exactly one character",
                   lambda: conv.to_charlm(ckpt_path, bad_meta, os.path.join(tmp, "x")))

    def with_state(edit, label):
        sd = {k: v.clone() for k, v in ckpt["model"].items()}
        edit(sd)
        path = os.path.join(tmp, label + ".pt")
        torch.save(dict(ckpt, model=sd), path)
        return lambda: conv.to_charlm(path, meta_path, os.path.join(tmp, "x"))

    def untie(sd):
        sd[conv.PREFIX + "lm_head.weight"][0, 0] += 1.0

    def unmask(sd):
        sd[conv.PREFIX + conv.mask_name(1)][0, 0, 0, 1] = 1.0

    expect_refused("an untied lm_head.weight", "lm_head.weight differs",
                   with_state(untie, "untied"))
    expect_refused("a wrong attn.bias buffer", "causal-mask", with_state(unmask, "unmasked"))


def check_shuffled(tmp, model, opt, chars, last_loss):
    """An itos out of code point order, wte's rows in the same order, converts to the same
    files as the sorted one."""
    perm = torch.randperm(len(chars), generator=torch.Generator().manual_seed(7)).tolist()
    shuffled = NanoGpt(len(chars), mask_buffers=True)
    shuffled.load_state_dict(model.state_dict())
    with torch.no_grad():
        shuffled.transformer.wte.weight.copy_(model.transformer.wte.weight[perm])
    ckpt, meta = os.path.join(tmp, "shuffled.pt"), os.path.join(tmp, "shuffled.pkl")
    save_nanogpt(shuffled, opt, [chars[i] for i in perm], last_loss, ckpt, meta)
    out = os.path.join(tmp, "shuffled_out")
    said = convert_cli(ckpt, meta, out)
    if "permuted" not in said:
        sys.exit(f"a shuffled itos converted without saying it permuted wte: {said}")
    for name in ("vocab.json", "model.safetensors"):
        if read_bytes(os.path.join(out, name)) != read_bytes(os.path.join(OUT, name)):
            sys.exit(f"the shuffled itos converts to a different {name}")
    print("a shuffled itos converts to the same bytes as the sorted one")


def check_charlm_vocab(tmp, text_path):
    exe = os.path.join(ROOT, "build", "charlm-train")
    if not os.path.exists(exe):
        print(f"{exe} not built: vocab.json not compared with charlm-train's")
        return
    out = os.path.join(tmp, "lstm")
    subprocess.run([exe, "train", "--corpus", text_path, "--out", out, "--steps", "2",
                    "--threads", "1"], check=True, capture_output=True)
    if read_bytes(os.path.join(out, "vocab.json")) != read_bytes(os.path.join(OUT, "vocab.json")):
        sys.exit("vocab.json differs from the one charlm-train writes for the same text")
    print("vocab.json is byte for byte charlm-train's for the same text")


def check_charlm_eval(text_path, loss):
    exe = os.path.join(ROOT, "build", "charlm-train")
    if not os.path.exists(exe):
        print(f"{exe} not built: the folder not scored by charlm-train eval")
        return
    r = subprocess.run([exe, "eval", "--model", OUT, "--corpus", text_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"charlm-train eval on {OUT} failed: {r.stderr}")
    got = json.loads(r.stdout)["loss"]
    if abs(got - loss) > 5e-7 + 1e-5 * loss:  # eval prints 6 decimals
        sys.exit(f"charlm-train eval scores {got}, PyTorch {loss}")
    print(f"charlm-train eval scores the converted folder {got} (PyTorch {loss:.9f})")


def check_round_trip(tmp, model, ids, nanogpt):
    idx = torch.tensor([ids[i:i + BLOCK] for i in range(0, len(ids) - BLOCK, BLOCK)])
    with torch.no_grad():
        want = model.logits(idx)
    for masks in ("yes", "no"):
        path = os.path.join(tmp, f"back_{masks}.pt")
        convert_cli("--to-nanogpt", OUT, path, "--mask-buffers", masks)
        ckpt = torch.load(path)
        back = NanoGpt(model.lm_head.weight.shape[0], mask_buffers=masks == "yes")
        back.load_state_dict(ckpt["model"], strict=True)
        with torch.no_grad():
            got = back.logits(idx)
        if not torch.equal(got, want):
            sys.exit(f"--to-nanogpt (mask buffers {masks}): logits differ by "
                     f"{(got - want).abs().max().item():.3g}")
        print(f"--to-nanogpt --mask-buffers {masks}: load_state_dict(strict=True), "
              f"logits identical")
        if nanogpt:
            check_nanogpt_itself(nanogpt, ckpt, idx, want, masks)


def check_nanogpt_itself(path, ckpt, idx, want, masks):
    sys.path.insert(0, path)
    import model as nano  # noqa: E402
    gpt = nano.GPT(nano.GPTConfig(**ckpt["model_args"]))
    if gpt.transformer.h[0].attn.flash != (masks == "no"):
        return  # this PyTorch's nanoGPT has the other layout
    gpt.load_state_dict(ckpt["model"], strict=True)
    gpt.eval()
    with torch.no_grad():
        got, _ = gpt(idx, idx)
    d = ((got - want).abs().max() / want.abs().max()).item()
    if d > 1e-6:
        sys.exit(f"nanoGPT's own GPT differs by {d:.3g} of the logits' scale")
    print(f"nanoGPT's own model.py: load_state_dict(strict=True), logits within {d:.3g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", help="write ckpt.pt and meta.pkl here instead of a temp folder")
    ap.add_argument("--nanogpt", help="a nanoGPT checkout: also load into its model.py")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)

    text_path = os.path.join(HERE, TEXT)
    text = read_bytes(text_path).decode("utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = [stoi[c] for c in text]

    g = torch.Generator().manual_seed(SEED)
    model = NanoGpt(len(chars), mask_buffers=True)
    init_weights(model, LAYERS, g)
    opt, last_loss = train(model, ids, g)
    print(f"trained {STEPS} steps, last batch loss {last_loss:.4f}")

    tmp = tempfile.mkdtemp()
    try:
        where = args.keep or tmp
        os.makedirs(where, exist_ok=True)
        ckpt_path, meta_path = os.path.join(where, "ckpt.pt"), os.path.join(where, "meta.pkl")
        save_nanogpt(model, opt, chars, last_loss, ckpt_path, meta_path)
        print(convert_cli(ckpt_path, meta_path, OUT), end="")

        tensors, meta = st_load(os.path.join(OUT, "model.safetensors"))
        sd = model.state_dict()
        want = [n for n, _ in model.named_parameters()]
        if list(tensors) != want:
            sys.exit(f"converted tensors {list(tensors)} are not the parameters {want}")
        for n in want:
            if not np.array_equal(tensors[n], sd[n].numpy()):
                sys.exit(f"{n} changed in conversion")
        vbytes = read_bytes(os.path.join(OUT, "vocab.json"))
        if vbytes != vocab_json_bytes(chars) or \
                meta["vocab_sha256"] != hashlib.sha256(vbytes).hexdigest():
            sys.exit("vocab.json or its hash is not what it should be")

        check_shuffled(tmp, model, opt, chars, last_loss)
        check_refusals(tmp, ckpt_path, meta_path, chars)
        check_charlm_vocab(tmp, text_path)

        reread = NanoGpt(len(chars), mask_buffers=False)
        reread.load_state_dict(dict({k: torch.from_numpy(v) for k, v in tensors.items()},
                                    **{"lm_head.weight": torch.from_numpy(
                                        tensors["transformer.wte.weight"])}), strict=True)
        loss = context_rule_loss(reread, ids, BLOCK)
        if loss != context_rule_loss(model, ids, BLOCK):
            sys.exit("the converted weights score the text differently from the originals")
        expected = {"text": TEXT, "block": BLOCK, "predictions": len(ids) - 1, "loss": loss}
        with open(os.path.join(OUT, "expected.json"), "w") as f:
            f.write(json.dumps(expected) + "\n")
        print(f"expected loss {loss!r} nats/char over {len(ids) - 1} predictions "
              f"(uniform would be {np.log(len(chars)):.4f})")

        check_charlm_eval(text_path, loss)
        check_round_trip(tmp, model, ids, args.nanogpt)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
