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
import time

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


# ---------------------------------------------------------------------------- sampling

M64 = (1 << 64) - 1


class Rng:
    """charlm's core/rng.c: xoshiro256** seeded through splitmix64."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def double(self):
        return (self.next() >> 11) * (1.0 / (1 << 53))


def sample(logits, p, recent, rng):
    """logits: float32 numpy [V]. Mirrors core/sampler.c."""
    l = logits.astype(np.float32).copy()
    pen, window = p["repetition_penalty"], min(p["repetition_window"], len(recent))
    if pen != 1.0 and window > 0:
        for i in set(recent[len(recent) - window:]):
            l[i] = l[i] / pen if l[i] > 0 else l[i] * pen
        l = np.nan_to_num(l, nan=-np.finfo(np.float32).max)
        l = np.clip(l, -np.finfo(np.float32).max, np.finfo(np.float32).max)
    if p["temperature"] <= 0 or p["top_k"] == 1:
        return int(np.argmax(l))
    order = np.lexsort((np.arange(len(l)), -l))  # descending logit, ties by lower id
    n = len(l)
    if 0 < p["top_k"] < n:
        n = p["top_k"]
    keep = order[:n]
    probs = np.exp((l[keep].astype(np.float64) - float(l[order[0]])) / p["temperature"])
    probs = probs.astype(np.float32).astype(np.float64)
    if p["top_p"] < 1.0:
        cum = np.cumsum(probs)
        m = int(np.searchsorted(cum, p["top_p"] * cum[-1])) + 1
        n = min(m, n)
        keep, probs = keep[:n], probs[:n]
    cum = np.cumsum(probs)
    u = rng.double() * cum[-1]
    i = int(np.searchsorted(cum, u, side="right"))
    return int(keep[min(i, n - 1)])


def generate(model, chars, index, p):
    """Yields (new_text, summary_or_None); the last item carries the summary."""
    t0 = time.perf_counter()
    ids, unknown = [], []
    for c in p["prompt"]:
        (ids.append(index[c]) if c in index else unknown.append(c))
    prompt_tokens = len(ids)
    recent = list(ids)
    feed = ids if ids else [index.get("\n", 0)]
    rng = Rng(p["seed"])
    text, tokens, finish, emitted = "", 0, "length", 0
    with torch.inference_mode():
        logits, state = model(torch.tensor(feed, dtype=torch.long).view(-1, 1))
        last = logits[-1, 0].numpy()
        while True:
            nxt = sample(last, p, recent, rng)
            ch = chars[nxt]
            tokens += 1
            text += ch
            recent.append(nxt)
            if len(recent) > 4 * max(1, p["repetition_window"]):
                recent = recent[-max(1, p["repetition_window"]):]
            hit = next((s for s in p["stop"] if text.endswith(s)), None)
            if hit is not None:
                text = text[:-len(hit)]
                finish = "stop"
                break
            if tokens >= p["max_tokens"]:
                break
            if p["stream"]:
                # Hold back a tail that may still grow into a stop sequence.
                hold = max([k for s in p["stop"] for k in range(1, len(s))
                            if text.endswith(s[:k])] + [0])
                if len(text) - hold > emitted:
                    yield text[emitted:len(text) - hold], None
                    emitted = len(text) - hold
            logits, state = model(torch.tensor([[nxt]], dtype=torch.long), state)
            last = logits[0, 0].numpy()
    if p["stream"] and len(text) > emitted:
        yield text[emitted:], None
    summary = {"text": text, "finish_reason": finish, "tokens": tokens,
               "prompt_tokens": prompt_tokens, "seed": p["seed"],
               "unknown_chars": "".join(unknown),
               "elapsed_ms": round((time.perf_counter() - t0) * 1e3, 3)}
    yield "", summary
