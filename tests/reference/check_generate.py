#!/usr/bin/python3
"""Checks that charlm-server generates what PyTorch generates for the same weights and seed.

    /usr/bin/python3 tests/reference/check_generate.py --server build/charlm-server \\
        --model artefacts

Starts charlm-server on a free loopback port, sends a set of /generate requests (sampled,
greedy, top-k off, top-p, repetition penalty, stop sequence, empty prompt, unknown
chars) and compares each reply with charlm_ref.generate: the same sampling order and
charlm's own generator (xoshiro256** via splitmix64) driven by torch.nn.LSTM's logits.
Texts must be identical; a tiny logit difference could in principle flip a draw that
lands on a boundary, so the report shows where the first difference is. Exit 0 when all
match.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import artefacts_load, generate  # noqa: E402

DEFAULTS = {"max_tokens": 200, "temperature": 0.8, "top_k": 40, "top_p": 1.0,
            "repetition_penalty": 1.0, "repetition_window": 64, "stop": [], "stream": False}

CASES = [
    {"prompt": "It was on a dreary night of November", "seed": 1},
    {"prompt": "It was on a dreary night of November", "seed": 2, "top_p": 0.7},
    {"prompt": "", "seed": 3, "top_k": 0, "temperature": 1.2},
    {"prompt": "Hello", "temperature": 0, "seed": 4},
    {"prompt": "Hello", "seed": 5, "repetition_penalty": 1.5, "repetition_window": 16},
    {"prompt": "Hello", "seed": 6, "stop": ["the", "\n\n"]},
    {"prompt": "caf\u00e9 \u2603 zebra", "seed": 7, "top_k": 5},
    {"prompt": "The", "seed": 2 ** 53, "max_tokens": 1},
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(port, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/generate", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="path to charlm-server")
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, chars, _ = artefacts_load(args.model)
    model.eval()
    index = {c: i for i, c in enumerate(chars)}

    port = free_port()
    srv = subprocess.Popen([args.server, "--model", args.model, "--host", "127.0.0.1", "--port",
                            str(port)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                if srv.poll() is not None:
                    sys.exit(f"charlm-server exited {srv.returncode}")
                time.sleep(0.1)
        failures = 0
        for case in CASES:
            got = post(port, case)
            p = dict(DEFAULTS, **case)
            p["stop"] = [p["stop"]] if isinstance(p["stop"], str) else p["stop"]
            ref = [s for _, s in generate(model, chars, index, p) if s is not None][0]
            keys = ("text", "finish_reason", "tokens", "prompt_tokens", "seed", "unknown_chars")
            diff = [k for k in keys if got.get(k) != ref[k]]
            first = next((i for i, (a, b) in enumerate(zip(got["text"], ref["text"])) if a != b),
                         None)
            status = "OK" if not diff else f"MISMATCH in {', '.join(diff)} (first char {first})"
            print(f"{json.dumps(case, ensure_ascii=False)}: {got['tokens']} chars, "
                  f"{got['finish_reason']} -> {status}")
            failures += bool(diff)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    print(f"{len(CASES) - failures}/{len(CASES)} identical")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
