#!/usr/bin/python3
"""Writes tests/reference/logprobs/: a tiny trained model and PyTorch's logprobs for it.

Regenerate (needs Debian's python3-torch; CI does not, the outputs are committed):

    /usr/bin/python3 tests/reference/make_logprob_fixture.py

tests/test_server_logprobs.c serves the folder with charlm-server and checks the
logprobs of /v1/completions, /generate and `charlm-train eval` against these numbers.

The model: Embedding(V, 8) -> nn.LSTM(8, 24, 2 layers) -> Linear(24, V), trained with
Adam for 100 steps on one short passage repeated, so that its distributions are far from
uniform: some chars are near-certain, others improbable, and the tails differ. Not longer:
sharper models have larger logits, and charlm's float32 error grows with them (2.3e-6 at
100 steps against 6.6e-6 at 200, too close to the tolerance).
Its vocabulary is the passage's chars: letters, space, newline, punctuation including '"'
(which must be escaped as a JSON key) and the non-ASCII 'é'.

Files written:
  model.safetensors, vocab.json   the model folder, in charlm's format
  text.txt                        T: the scored text (315 chars); three of its chars are
                                  outside the vocabulary, 'g', ':' and '☃', which charlm
                                  skips (neither fed nor scored) but a reply's text keeps
  expected.json                   the numbers, described below

The numbers are the exact ones for the stored float32 weights: the forward pass and the
log-softmax run in float64 (model.double()) from those weights. charlm computes in float32;
the test allows 1e-5 absolute. Every row is checked here to have margins the float32
rounding cannot cross: the greedy argmax leads the runner-up by more than 1e-3, and the
5th most likely char leads the 6th by more than 1e-4, so the top-5 sets are unambiguous.

expected.json:
  "tolerance"        1e-5, absolute, on every logprob and the mean
  "vocab"            the chars, by id
  "score"            T scored from the zero state, one stream, T's out-of-vocabulary chars
                     removed (what /v1/completions echo with max_tokens 0 reports):
     "text"          T itself
     "tokens"        the in-vocabulary chars of T, in order
     "ids"           their vocab ids
     "text_offset"   each token's offset in T, in code points (T's skipped chars count)
     "logprob"       token i's log-softmax from the state after tokens 0..i-1; null for
                     token 0, which nothing predicts
     "top"           per token, null for token 0, else the 5 most likely
                     [[id, char, logprob], ...], most likely first
     "mean_nll"      the mean of -logprob over tokens 1.. (charlm-train eval's "loss")
     "chars", "skipped"   what charlm-train eval reports: predictions scored, chars skipped
  "greedy"           prompt P continued 20 chars at temperature 0 (argmax of the raw
                     logits), the prompt fed from the zero state:
     "prompt", "text", "ids", "logprob", "top"   as above, one entry per generated char
"""

import hashlib
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from charlm_ref import CharLSTM, artefacts_load, artefacts_save, vocab_build  # noqa: E402

SEED = 20261125
E, H, L = 8, 24, 2
STEPS, LR, SEQ, BATCH = 100, 1e-2, 48, 16
TOPK = 5
GREEDY_STEPS = 20
TOL = 1e-5

PASSAGE = ('The caf\u00e9 opened at nine; "Bonjour!" said Zo\u00e9, and the cat sat on the '
           'mat.\nWhy? Because it was warm, and the sun was out.\n')

# T: pieces of the passage, some of it changed so that the model is surprised in places,
# with three chars the passage lacks: 'g', ':' and a snowman.
TEXT = ('The caf\u00e9 opened at nine; "Bonjour!" said Zo\u00e9, and the dog sat on the '
        'mat.\nWhy? Because the sun was warm, and the cat was out.\nThe cat said "Bonjour!" '
        'at nine \u2603 and Zo\u00e9 sat on the caf\u00e9 mat.\nWhy? Because it was out, and '
        'the sun opened.\nThe sun said: "Why, the cat is warm!"\nand the mat was out; at nine '
        'the caf\u00e9 sat.\n')

PROMPT = 'Why? Because'

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "logprobs")


def train(chars):
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in PASSAGE * 40], dtype=torch.long)
    model = CharLSTM(len(chars), E, H, L)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(SEED + 1)
    for step in range(STEPS):
        starts = torch.randint(0, len(data) - SEQ - 1, (BATCH,), generator=g)
        x = torch.stack([data[s:s + SEQ] for s in starts], dim=1)
        y = torch.stack([data[s + 1:s + SEQ + 1] for s in starts], dim=1)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step}: loss {loss.item():.4f}")
    return model, loss.item()


def rows(model, ids):
    """log-softmax rows [len(ids), V] in float64: row i is the state after ids[0..i]."""
    with torch.no_grad():
        logits, _ = model(torch.tensor(ids, dtype=torch.long).view(-1, 1))
        return F.log_softmax(logits[:, 0, :], dim=-1)


def top(row, chars, what):
    vals, idx = torch.sort(row, descending=True)
    gap = (vals[TOPK - 1] - vals[TOPK]).item()
    if gap <= 1e-4:
        sys.exit(f"{what}: 5th and 6th most likely are {gap:.2e} apart; change the text")
    return [[int(i), chars[int(i)], float(v)] for i, v in zip(idx[:TOPK], vals[:TOPK])]


def dump(value, indent=""):
    """JSON with lists of numbers or chars on one line and one line per top-5 row."""
    inline = json.dumps(value, ensure_ascii=False)
    flat = isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value)
    if not isinstance(value, (dict, list)) or flat or len(inline) <= 100:
        return inline
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    items = [inner + dump(v, inner) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    chars = vocab_build(PASSAGE)
    model, last_loss = train(chars)
    os.makedirs(OUT, exist_ok=True)
    cfg = {"embed": E, "hidden": H, "layers": L}
    corpus_sha = hashlib.sha256(PASSAGE.encode("utf-8")).hexdigest()
    artefacts_save(OUT, model, chars, cfg, corpus_sha, STEPS, last_loss)

    # Everything below comes from the stored float32 weights, evaluated in float64.
    model, chars, _ = artefacts_load(OUT)
    model = model.double().eval()
    index = {c: i for i, c in enumerate(chars)}
    if "\u2603" in index or "\u00e9" not in index:
        sys.exit("the vocabulary must hold \u00e9 and not \u2603")

    with open(os.path.join(OUT, "text.txt"), "wb") as f:
        f.write(TEXT.encode("utf-8"))
    kept = [(off, c) for off, c in enumerate(TEXT) if c in index]
    ids = [index[c] for _, c in kept]
    lsm = rows(model, ids)
    logprob, tops = [None], [None]
    for i in range(1, len(ids)):
        logprob.append(float(lsm[i - 1, ids[i]]))
        tops.append(top(lsm[i - 1], chars, f"text position {i}"))
    nll = [-x for x in logprob[1:]]
    score = {"text": TEXT, "tokens": [c for _, c in kept], "ids": ids,
             "text_offset": [off for off, _ in kept], "logprob": logprob, "top": tops,
             "mean_nll": sum(nll) / len(nll), "chars": len(nll),
             "skipped": len(TEXT) - len(kept)}

    # Greedy: feed the prompt, then argmax and feed it back, one char at a time.
    with torch.no_grad():
        logits, state = model(torch.tensor([index[c] for c in PROMPT]).view(-1, 1))
        last = logits[-1, 0]
        g_ids, g_lp, g_top = [], [], []
        for step in range(GREEDY_STEPS):
            row = F.log_softmax(last, dim=-1)
            two = torch.topk(row, 2).values
            if (two[0] - two[1]).item() <= 1e-3:
                sys.exit(f"greedy step {step}: argmax leads by only {(two[0] - two[1]).item():.2e}")
            nxt = int(torch.argmax(row))
            g_ids.append(nxt)
            g_lp.append(float(row[nxt]))
            g_top.append(top(row, chars, f"greedy step {step}"))
            logits, state = model(torch.tensor([[nxt]]), state)
            last = logits[0, 0]
    greedy = {"prompt": PROMPT, "text": "".join(chars[i] for i in g_ids), "ids": g_ids,
              "logprob": g_lp, "top": g_top}

    expected = {"tolerance": TOL, "vocab": chars, "score": score, "greedy": greedy}
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        f.write(dump(expected) + "\n")
    lps = logprob[1:]
    print(f"wrote {OUT}: V={len(chars)}, {len(ids)} tokens of {len(TEXT)} chars, "
          f"mean nll {score['mean_nll']:.6f}, logprobs {min(lps):.3f} .. {max(lps):.3f}; "
          f"greedy {greedy['text']!r}")


if __name__ == "__main__":
    main()
