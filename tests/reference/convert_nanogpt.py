#!/usr/bin/python3
"""Converts between a nanoGPT character checkpoint and a charlm model folder (outside CI).

nanoGPT -> charlm (a folder charlm-server and charlm-train eval|sample read):

    /usr/bin/python3 tests/reference/convert_nanogpt.py CKPT.pt META.pkl OUTDIR

  CKPT.pt is what nanoGPT's train.py saves (out_dir/ckpt.pt): a dict whose 'model' is the
  GPT's state_dict (the '_orig_mod.' prefix torch.compile adds is removed) and whose
  'model_args' holds n_layer, n_head, n_embd, block_size, bias, vocab_size (dropout is
  training only and not kept). 'iter_num' and 'best_val_loss', when there, become the
  model's `steps` and `best_val_loss`. META.pkl is the one its data/<dataset>/prepare.py
  writes: {'vocab_size', 'itos', 'stoi'}, each itos entry one character.
  OUTDIR receives vocab.json and model.safetensors as docs/FORMATS.md describes them.

  charlm's vocabulary is sorted by code point. nanoGPT's shakespeare_char itos already is;
  an itos in another order is accepted and the rows of transformer.wte.weight (which is
  also the tied output layer) are permuted into code point order, which the script says.
  Refused, with a message: an itos entry that is not exactly one character (a surrogate
  counts as none), a character twice, ids that are not 0 .. V-1, stoi disagreeing with
  itos, a vocab_size that is not the number of entries, a state_dict with a tensor missing
  or extra or of the wrong shape, an lm_head.weight that differs from transformer.wte.weight
  (an untied output layer), an attn.bias buffer that is not the causal mask. The causal-mask
  buffers nanoGPT registers without flash attention (PyTorch < 2.0) and lm_head.weight
  (tied) are not written. Half-precision tensors are widened to float32.

charlm -> nanoGPT:

    /usr/bin/python3 tests/reference/convert_nanogpt.py --to-nanogpt MODELDIR OUT.pt \\
        [--meta OUT_META.pkl] [--dataset NAME] [--mask-buffers auto|yes|no]

  MODELDIR is a charlm GPT folder (metadata arch = gpt, norm = layernorm: nanoGPT has no
  RMSNorm). OUT.pt's 'model' loads into nanoGPT's GPT(GPTConfig(**ckpt['model_args']))
  with load_state_dict(strict=True): it holds lm_head.weight (the same tensor as
  transformer.wte.weight, tied as in nanoGPT) and, with --mask-buffers yes, the causal-mask
  buffers transformer.h.{i}.attn.bias. nanoGPT registers those only when PyTorch lacks
  scaled_dot_product_attention (< 2.0); `auto` (the default) decides as nanoGPT's model.py
  does under the PyTorch running this script. --meta writes nanoGPT's meta.pkl for the
  vocabulary; nanoGPT's sample.py reads data/<ckpt['config']['dataset']>/meta.pkl, so
  --dataset NAME records that name. The checkpoint has no optimizer state: sample.py works
  from it, train.py --init_from=resume does not.

Both directions read only data: the checkpoint with an unpickler that accepts tensors and
plain containers and refuses any other class, meta.pkl with one that refuses every class
(it is plain dicts, ints and strs).
"""

import argparse
import hashlib
import io
import json
import os
import pickle
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import st_load, st_save, vocab_json_bytes  # noqa: E402

PREFIX = "_orig_mod."
MAX_VOCAB = 65536


class ConvertError(Exception):
    pass


def gpt_shapes(layers, embed, vocab, block, bias):
    """nanoGPT's parameter names and shapes, in its state_dict order (core/gpt.c's table)."""
    C = embed
    out = [("transformer.wte.weight", (vocab, C)), ("transformer.wpe.weight", (block, C))]
    for i in range(layers):
        h = f"transformer.h.{i}."
        for name, shape in (("ln_1", (C,)), ("attn.c_attn", (3 * C, C)),
                            ("attn.c_proj", (C, C)), ("ln_2", (C,)),
                            ("mlp.c_fc", (4 * C, C)), ("mlp.c_proj", (C, 4 * C))):
            out.append((h + name + ".weight", shape))
            if bias:
                out.append((h + name + ".bias", (shape[0],)))
    out.append(("transformer.ln_f.weight", (C,)))
    if bias:
        out.append(("transformer.ln_f.bias", (C,)))
    return out


def mask_name(i):
    return f"transformer.h.{i}.attn.bias"


def causal_mask(block):
    return torch.tril(torch.ones(block, block)).view(1, 1, block, block)


# ---------------------------------------------------------------------------- reading

class _DataOnly(pickle.Unpickler):
    def find_class(self, module, name):
        raise ConvertError(f"refers to {module}.{name}: only plain data is read")


def load_meta(path):
    with open(path, "rb") as f:
        try:
            meta = _DataOnly(io.BytesIO(f.read())).load()
        except ConvertError as e:
            raise ConvertError(f"{path}: {e}")
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ConvertError(f"{path}: not a pickle: {e}")
    if not isinstance(meta, dict) or "itos" not in meta:
        raise ConvertError(f"{path}: not a nanoGPT meta.pkl (a dict with 'itos')")
    return meta


def meta_chars(meta, path):
    """The characters in nanoGPT's id order, after checking every rule."""
    itos = meta["itos"]
    if not isinstance(itos, dict) or not itos:
        raise ConvertError(f"{path}: itos is not a non-empty dict of id -> character")
    if sorted(itos) != list(range(len(itos))):
        raise ConvertError(f"{path}: itos ids are not exactly 0 .. {len(itos) - 1}")
    chars = [itos[i] for i in range(len(itos))]
    for i, ch in enumerate(chars):
        if not isinstance(ch, str) or len(ch) != 1 or 0xD800 <= ord(ch) <= 0xDFFF:
            raise ConvertError(f"{path}: itos[{i}] = {ch!r} is not exactly one character "
                               f"(charlm's vocabulary holds one Unicode code point per id)")
    if len(set(chars)) != len(chars):
        dup = next(c for c in chars if chars.count(c) > 1)
        raise ConvertError(f"{path}: itos has {dup!r} more than once")
    if "vocab_size" in meta and meta["vocab_size"] != len(chars):
        raise ConvertError(f"{path}: vocab_size {meta['vocab_size']} but itos has "
                           f"{len(chars)} entries")
    stoi = meta.get("stoi")
    if stoi is not None and stoi != {c: i for i, c in enumerate(chars)}:
        raise ConvertError(f"{path}: stoi is not the inverse of itos")
    if len(chars) > MAX_VOCAB:
        raise ConvertError(f"{path}: {len(chars)} characters, charlm holds at most {MAX_VOCAB}")
    return chars


class _TorchDataOnly(pickle.Unpickler):
    """What torch.save writes for dicts, lists, numbers, strings and tensors, and no more
    (torch.load resolves the storage classes itself)."""

    ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"),
               ("torch._utils", "_rebuild_parameter"), ("torch", "Size")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise ConvertError(f"the checkpoint refers to {module}.{name}: only data is read")


class _TorchDataPickle:
    """A pickle module for torch.load. torch.load(weights_only=True) would do, but
    PyTorch 1.13's refuses floats (a checkpoint's learning rates, best_val_loss)."""
    Unpickler = _TorchDataOnly

    @staticmethod
    def load(f, **kw):
        return _TorchDataOnly(f, **kw).load()


def load_ckpt(path):
    try:
        return torch.load(path, map_location="cpu", pickle_module=_TorchDataPickle)
    except ConvertError as e:
        raise ConvertError(f"{path}: {e}")
    except Exception as e:  # torch raises several kinds for a file that is not a checkpoint
        raise ConvertError(f"{path}: cannot be read as a PyTorch checkpoint: {e}")


def model_args(ckpt, path):
    args = ckpt.get("model_args") if isinstance(ckpt, dict) else None
    if not isinstance(args, dict):
        raise ConvertError(f"{path}: no 'model_args' dict (is it nanoGPT's ckpt.pt?)")
    out = {}
    for key in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
        v = args.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConvertError(f"{path}: model_args[{key!r}] = {v!r} is not a positive integer")
        out[key] = v
    if not isinstance(args.get("bias"), bool):
        raise ConvertError(f"{path}: model_args['bias'] = {args.get('bias')!r} is not a bool")
    out["bias"] = args["bias"]
    if out["n_embd"] % out["n_head"]:
        raise ConvertError(f"{path}: n_head {out['n_head']} does not divide n_embd {out['n_embd']}")
    return out


def state_tensors(state, a, path):
    """The state_dict's parameters as float32 arrays in charlm's order, after checking
    names, shapes, the tied lm_head and the causal-mask buffers."""
    if not isinstance(state, dict):
        raise ConvertError(f"{path}: 'model' is not a state_dict")
    sd = {}
    for k, v in state.items():
        name = k[len(PREFIX):] if k.startswith(PREFIX) else k
        if not isinstance(v, torch.Tensor):
            raise ConvertError(f"{path}: {k} is not a tensor")
        sd[name] = v
    shapes = gpt_shapes(a["n_layer"], a["n_embd"], a["vocab_size"], a["block_size"], a["bias"])
    known = {n for n, _ in shapes} | {"lm_head.weight"}
    known |= {mask_name(i) for i in range(a["n_layer"])}
    extra = sorted(set(sd) - known)
    missing = [n for n, _ in shapes if n not in sd]
    if extra or missing:
        raise ConvertError(f"{path}: state_dict does not match model_args {a}: "
                           f"missing {missing}, unexpected {extra}")
    out = {}
    for name, shape in shapes:
        t = sd[name]
        if tuple(t.shape) != shape:
            raise ConvertError(f"{path}: {name} has shape {list(t.shape)}, model_args give "
                               f"{list(shape)}")
        if not t.is_floating_point():
            raise ConvertError(f"{path}: {name} is {t.dtype}, not a float tensor")
        out[name] = t.detach().to(torch.float32).numpy().copy()
    if "lm_head.weight" in sd:
        lm = sd["lm_head.weight"].detach().to(torch.float32).numpy()
        if lm.shape != out["transformer.wte.weight"].shape or \
                not np.array_equal(lm, out["transformer.wte.weight"]):
            raise ConvertError(f"{path}: lm_head.weight differs from transformer.wte.weight: "
                               f"an untied output layer, which charlm does not have")
    mask = causal_mask(a["block_size"])
    for i in range(a["n_layer"]):
        b = sd.get(mask_name(i))
        if b is not None and (b.shape != mask.shape or not torch.equal(b.float(), mask)):
            raise ConvertError(f"{path}: {mask_name(i)} is not nanoGPT's causal-mask buffer "
                               f"(tril of ones, [1, 1, block_size, block_size])")
    return out


# ---------------------------------------------------------------------------- nanoGPT -> charlm

def to_charlm(ckpt_path, meta_path, outdir, log=print):
    ckpt = load_ckpt(ckpt_path)
    a = model_args(ckpt, ckpt_path)
    chars = meta_chars(load_meta(meta_path), meta_path)
    if len(chars) != a["vocab_size"]:
        raise ConvertError(f"{meta_path} has {len(chars)} characters but {ckpt_path}'s "
                           f"vocab_size is {a['vocab_size']} (the rows of wte)")
    tensors = state_tensors(ckpt.get("model"), a, ckpt_path)

    order = sorted(range(len(chars)), key=lambda i: ord(chars[i]))
    if order != list(range(len(chars))):
        tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"][order]
        chars = [chars[i] for i in order]
        log("itos is not sorted by code point: the rows of transformer.wte.weight (also the "
            "tied output layer) were permuted into code point order")

    vbytes = vocab_json_bytes(chars)
    meta = {"arch": "gpt", "vocab_size": len(chars), "layers": a["n_layer"],
            "heads": a["n_head"], "embed": a["n_embd"], "block": a["block_size"],
            "norm": "layernorm", "bias": int(a["bias"]),
            "vocab_sha256": hashlib.sha256(vbytes).hexdigest()}
    if isinstance(ckpt.get("iter_num"), int):
        meta["steps"] = ckpt["iter_num"]
    best = ckpt.get("best_val_loss")
    if isinstance(best, (int, float, torch.Tensor)) and np.isfinite(float(best)):
        meta["best_val_loss"] = "%.9g" % float(best)

    os.makedirs(outdir, exist_ok=True)
    vpath = os.path.join(outdir, "vocab.json")
    with open(vpath + ".tmp", "wb") as f:
        f.write(vbytes)
    os.replace(vpath + ".tmp", vpath)
    st_save(os.path.join(outdir, "model.safetensors"), tensors, meta)
    log(f"wrote {outdir}: GPT layers {a['n_layer']}, heads {a['n_head']}, embed {a['n_embd']}, "
        f"block {a['block_size']}, bias {int(a['bias'])}, vocab {len(chars)}")


# ---------------------------------------------------------------------------- charlm -> nanoGPT

def meta_int(meta, key, path):
    try:
        return int(meta[key])
    except (KeyError, ValueError):
        raise ConvertError(f"{path}: metadata {key!r} missing or not an integer")


def to_nanogpt(modeldir, out_path, meta_out=None, dataset=None, mask_buffers="auto", log=print):
    vpath = os.path.join(modeldir, "vocab.json")
    mpath = os.path.join(modeldir, "model.safetensors")
    with open(vpath, "rb") as f:
        vbytes = f.read()
    vocab = json.loads(vbytes.decode("utf-8"))
    if not isinstance(vocab, dict) or vocab.get("format") != "charlm-vocab" or \
            vocab.get("version") != 1 or not isinstance(vocab.get("chars"), list):
        raise ConvertError(f"{vpath}: not a charlm vocab.json (format charlm-vocab, version 1, "
                           f"chars)")
    chars = vocab["chars"]
    tensors, meta = st_load(mpath)
    if meta.get("arch") != "gpt":
        raise ConvertError(f"{mpath}: arch is {meta.get('arch', 'lstm')!r}, not 'gpt'")
    if meta.get("norm") != "layernorm":
        raise ConvertError(f"{mpath}: norm is {meta.get('norm')!r}; nanoGPT has only layernorm")
    if meta.get("vocab_sha256") != hashlib.sha256(vbytes).hexdigest():
        raise ConvertError(f"{vpath}: its sha256 is not the model's vocab_sha256")
    a = {"n_layer": meta_int(meta, "layers", mpath), "n_head": meta_int(meta, "heads", mpath),
         "n_embd": meta_int(meta, "embed", mpath), "block_size": meta_int(meta, "block", mpath),
         "bias": meta_int(meta, "bias", mpath) == 1,
         "vocab_size": meta_int(meta, "vocab_size", mpath)}
    if a["vocab_size"] != len(chars):
        raise ConvertError(f"{vpath} has {len(chars)} chars, the model {a['vocab_size']}")
    state = state_tensors({k: torch.from_numpy(v) for k, v in tensors.items()}, a, mpath)
    if any(mask_name(i) in tensors for i in range(a["n_layer"])):
        raise ConvertError(f"{mpath}: holds attn.bias buffers, which charlm files do not")

    if mask_buffers == "auto":
        with_masks = not hasattr(torch.nn.functional, "scaled_dot_product_attention")
    else:
        with_masks = mask_buffers == "yes"
    sd = {}
    for name, _ in gpt_shapes(a["n_layer"], a["n_embd"], a["vocab_size"], a["block_size"],
                              a["bias"]):
        if with_masks and name.endswith(".attn.c_attn.weight"):
            sd[name[:-len("c_attn.weight")] + "bias"] = causal_mask(a["block_size"])
        sd[name] = torch.from_numpy(state[name])
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # one tensor, tied as nanoGPT's
    ckpt = {"model": sd, "model_args": dict(a, dropout=0.0),
            "iter_num": int(meta.get("steps", 0)),
            "best_val_loss": float(meta.get("best_val_loss", "inf")),
            "config": {"dataset": dataset} if dataset else {}}
    torch.save(ckpt, out_path)
    log(f"wrote {out_path}" + (" with the causal-mask buffers" if with_masks else ""))
    if meta_out:
        with open(meta_out, "wb") as f:
            pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)),
                         "stoi": {c: i for i, c in enumerate(chars)}}, f)
        log(f"wrote {meta_out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", metavar="CKPT.pt META.pkl OUTDIR")
    ap.add_argument("--to-nanogpt", nargs=2, metavar=("MODELDIR", "OUT.pt"))
    ap.add_argument("--meta", metavar="OUT_META.pkl", help="with --to-nanogpt: write meta.pkl")
    ap.add_argument("--dataset", help="with --to-nanogpt: config['dataset'] for sample.py")
    ap.add_argument("--mask-buffers", choices=("auto", "yes", "no"), default="auto",
                    help="with --to-nanogpt: write the attn.bias buffers (default: as nanoGPT "
                         "would under this PyTorch)")
    args = ap.parse_args()
    try:
        if args.to_nanogpt:
            if args.paths:
                ap.error("--to-nanogpt takes MODELDIR OUT.pt and no other paths")
            to_nanogpt(*args.to_nanogpt, meta_out=args.meta, dataset=args.dataset,
                       mask_buffers=args.mask_buffers)
        else:
            if len(args.paths) != 3:
                ap.error("give CKPT.pt META.pkl OUTDIR, or --to-nanogpt MODELDIR OUT.pt")
            to_charlm(*args.paths)
    except (ConvertError, OSError, ValueError) as e:
        sys.exit(f"convert_nanogpt.py: {e}")


if __name__ == "__main__":
    main()
