#!/usr/bin/python3
"""Flask + PyTorch reference of charlm-server's POST /generate, for bench/serve_bench.sh.

    /usr/bin/python3 bench/flask_ref.py --model DIR [--host 127.0.0.1] [--port 8081]

Loads vocab.json + model.safetensors (charlm's artefacts) into torch.nn.LSTM and serves
the same request and response as charlm-server's POST /generate (docs/API.md;
non-streamed and SSE), with the same sampling order: repetition penalty over the window
-> temperature (0 = greedy) -> top-k -> top-p -> draw. The generator is charlm's own (xoshiro256** seeded by splitmix64, one
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

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from flask import Flask, Response, jsonify, request  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
from charlm_ref import artefacts_load, generate  # noqa: E402

SEED_MAX = 1 << 53


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
