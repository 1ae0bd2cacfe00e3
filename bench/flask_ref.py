#!/usr/bin/python3
"""Flask + PyTorch reference of charlm-server's POST /generate, for bench/serve_bench.sh.

    /usr/bin/python3 bench/flask_ref.py --model DIR [--host 127.0.0.1] [--port 8081]

Loads vocab.json + model.safetensors (charlm's artefacts) into torch.nn.LSTM and serves
the same request and response as SPEC's /generate (non-streamed and SSE), with the same
sampling order: repetition penalty over the window -> temperature (0 = greedy) -> top-k
-> top-p -> draw. The generator is charlm's own (xoshiro256** seeded by splitmix64, one
53-bit double per draw), so a request with a seed produces the same text as charlm-server
wherever the two models' logits agree closely enough to pick the same chars.

This is what a competent "just serve it with Flask" deployment looks like: threaded
server, one torch intra-op thread, the prompt fed in one LSTM call, then one call per
generated char. It validates fields (400 naming the field) but is a benchmark baseline,
not a hardened server.
"""

import argparse
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from charlm_ref import artefacts_load  # noqa: E402

M64 = (1 << 64) - 1
SEED_MAX = 1 << 53


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


class BadRequest(Exception):
    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


FIELDS = {"prompt", "max_tokens", "temperature", "top_k", "top_p", "repetition_penalty",
          "repetition_window", "seed", "stop", "stream"}


def _number(body, key, default):
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadRequest(f"{key} must be a number", key)
    return float(v)


def _integer(body, key, default, lo, hi):
    v = body.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or v != int(v):
        raise BadRequest(f"{key} must be an integer", key)
    v = int(v)
    if not lo <= v <= hi:
        raise BadRequest(f"{key} must be in {lo}..{hi}", key)
    return v


def parse(body, max_tokens_limit):
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    for k in body:
        if k not in FIELDS:
            raise BadRequest(f"unknown field {k}", k)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt is required and must be a string", "prompt")
    p = {
        "prompt": prompt,
        "max_tokens": _integer(body, "max_tokens", 200, 1, max_tokens_limit),
        "temperature": _number(body, "temperature", 0.8),
        "top_k": _integer(body, "top_k", 40, 0, 1 << 31),
        "top_p": _number(body, "top_p", 1.0),
        "repetition_penalty": _number(body, "repetition_penalty", 1.0),
        "repetition_window": _integer(body, "repetition_window", 64, 0, 1 << 31),
        "seed": _integer(body, "seed", random.randrange(SEED_MAX), 0, SEED_MAX),
    }
    if p["temperature"] < 0:
        raise BadRequest("temperature must be >= 0", "temperature")
    if not 0 < p["top_p"] <= 1:
        raise BadRequest("top_p must be in (0, 1]", "top_p")
    if not p["repetition_penalty"] > 0:
        raise BadRequest("repetition_penalty must be > 0", "repetition_penalty")
    stop = body.get("stop", [])
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or len(stop) > 4 or \
            not all(isinstance(s, str) and s for s in stop):
        raise BadRequest("stop must be a non-empty string or an array of up to 4", "stop")
    p["stop"] = stop
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream must be a boolean", "stream")
    p["stream"] = stream
    return p


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


def make_app(model_dir, max_tokens_limit):
    model, chars, meta = artefacts_load(model_dir)
    model.eval()
    index = {c: i for i, c in enumerate(chars)}
    app = Flask(__name__)

    def error(status, message, param=None):
        err = {"message": message}
        if param is not None:
            err["param"] = param
        return jsonify({"error": err}), status

    @app.get("/health")
    def health():
        return jsonify({"status": "ok", "vocab_size": len(chars), "hidden": meta["hidden"]})

    @app.post("/generate")
    def gen():
        if not request.is_json:
            return error(415, "Content-Type must be application/json")
        try:
            body = json.loads(request.get_data(as_text=False).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return error(400, "malformed JSON")
        try:
            p = parse(body, max_tokens_limit)
        except BadRequest as e:
            return error(400, str(e), e.param)
        if not p["stream"]:
            for _, summary in generate(model, chars, index, p):
                if summary is not None:
                    return jsonify(summary)

        def events():
            for chunk, summary in generate(model, chars, index, p):
                if summary is None:
                    yield "data: " + json.dumps({"text": chunk}) + "\n\n"
                else:
                    summary.pop("text")
                    summary["done"] = True
                    yield "data: " + json.dumps(summary) + "\n\n"
        return Response(events(), mimetype="text/event-stream")

    return app


def main():
    ap = argparse.ArgumentParser(description="Flask + PyTorch reference server")
    ap.add_argument("--model", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--max-tokens", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    app = make_app(args.model, args.max_tokens)
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log: it costs time
    app.run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
