"""Shared pieces of the PyTorch reference: safetensors I/O, the model, artefacts.

The `safetensors` pip package is not available on Debian, and the container is simple
enough to read and write with json + struct + numpy:

    8-byte little-endian header length N, N bytes of JSON
    {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
     "__metadata__": {"key": "string value"}}
    then the raw little-endian data.

Used by tests/reference/*.py and bench/*.py (which put this folder on sys.path).
"""

import hashlib
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------- safetensors

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def st_save(path, tensors, metadata=None):
    """tensors: ordered dict name -> array-like (stored as F32). Written atomically."""
    header = {}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        arr = np.ascontiguousarray(np.asarray(value, dtype="<f4"))
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # keeps the data 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def st_load(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} beyond the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, entry in header.items():
        dt = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
        begin, end = entry["data_offsets"]
        if base + end > len(data):
            raise ValueError(f"{path}: tensor {name} beyond the file")
        arr = np.frombuffer(data, dtype=dt, count=(end - begin) // dt.itemsize,
                            offset=base + begin)
        out[name] = arr.reshape(entry["shape"]).copy()
    return out, meta


# ---------------------------------------------------------------------------- vocab

def _json_char(ch):
    """One entry of vocab.json, byte for byte what core/vocab.c writes."""
    cp = ord(ch)
    special = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\b": "\\b", "\f": "\\f"}
    if ch in special:
        return special[ch]
    if cp < 0x20 or cp == 0x7F:
        return "\\u%04x" % cp
    return ch


def vocab_json_bytes(chars):
    body = ", ".join('"' + _json_char(c) + '"' for c in chars)
    text = '{"format": "charlm-vocab", "version": 1, "chars": [' + body + "]}\n"
    return text.encode("utf-8")


def vocab_build(text):
    return sorted(set(text))


# ---------------------------------------------------------------------------- model

class CharLSTM(nn.Module):
    """Embedding(V, E) -> nn.LSTM(E, H, L) -> Linear(H, V), time-major like charlm."""

    def __init__(self, vocab_size, embed, hidden, layers, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers,
                            dropout=dropout if layers > 1 else 0.0, batch_first=False)
        self.fc = nn.Linear(hidden, vocab_size)

    def forward(self, ids, state=None):
        """ids [T, B] long -> logits [T, B, V], (h, c)."""
        out, state = self.lstm(self.embedding(ids), state)
        return self.fc(out), state


def model_from_tensors(tensors, meta):
    V = int(meta["vocab_size"])
    model = CharLSTM(V, int(meta["embed"]), int(meta["hidden"]), int(meta["layers"]))
    sd = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()}
    model.load_state_dict(sd, strict=True)
    return model


def artefacts_load(model_dir):
    """Loads vocab.json + model.safetensors; returns (model, chars, meta)."""
    vpath = os.path.join(model_dir, "vocab.json")
    with open(vpath, "rb") as f:
        vbytes = f.read()
    chars = json.loads(vbytes.decode("utf-8"))["chars"]
    tensors, meta = st_load(os.path.join(model_dir, "model.safetensors"))
    want = meta.get("vocab_sha256")
    if want is not None and want != hashlib.sha256(vbytes).hexdigest():
        raise ValueError(f"{vpath}: sha256 does not match model.safetensors vocab_sha256")
    if int(meta["vocab_size"]) != len(chars):
        raise ValueError(f"{vpath}: {len(chars)} chars, model says {meta['vocab_size']}")
    return model_from_tensors(tensors, meta), chars, meta


def artefacts_save(model_dir, model, chars, cfg, corpus_sha256, steps, best_val_loss):
    """Writes vocab.json then model.safetensors (whose metadata hashes vocab.json)."""
    os.makedirs(model_dir, exist_ok=True)
    vbytes = vocab_json_bytes(chars)
    with open(os.path.join(model_dir, "vocab.json"), "wb") as f:
        f.write(vbytes)
    meta = {
        "embed": cfg["embed"], "hidden": cfg["hidden"], "layers": cfg["layers"],
        "vocab_size": len(chars),
        "vocab_sha256": hashlib.sha256(vbytes).hexdigest(),
        "corpus_sha256": corpus_sha256,
        "steps": steps,
        "best_val_loss": repr(float(best_val_loss)),
    }
    st_save(os.path.join(model_dir, "model.safetensors"), model.state_dict(), meta)


def lr_at(step, steps, lr_max):
    """Warmup + cosine schedule, the same as charlm-train's."""
    warmup = max(1, min(100, steps // 10))
    lr_min = lr_max / 10
    if step < warmup:
        return lr_max * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * progress))


def stream_loss(model, ids, chunk=4096):
    """Mean CE of predicting ids[i] from ids[:i] (i = 1..n-1), one stream from zero state.

    Returns (sum of nats, number of predictions)."""
    total = 0.0
    count = 0
    state = None
    with torch.no_grad():
        x = torch.as_tensor(ids, dtype=torch.long)
        for s in range(0, len(ids) - 1, chunk):
            inp = x[s:min(s + chunk, len(ids) - 1)]
            tgt = x[s + 1:s + 1 + len(inp)]
            logits, state = model(inp.view(-1, 1), state)
            total += F.cross_entropy(logits.view(-1, logits.shape[-1]).double(), tgt,
                                     reduction="sum").item()
            count += len(tgt)
    return total, count
