#!/usr/bin/env python3
"""Draws training curves from train_log.jsonl files as one SVG (standard library only).

    bench/plot_curves.py OUT.svg LABEL:LOG:TOKENS_PER_STEP [LABEL:LOG:TOKENS_PER_STEP ...]

Each series is one model: its validation loss (solid) and the training loss of the batch
at each evaluation (dashed) against the tokens trained on (step x TOKENS_PER_STEP, which
is batch x sequence length), so models with different batch shapes share one axis.
Options: --title TEXT, --target LOSS (a dotted horizontal line, e.g. an issue's goal).
"""
import argparse
import json
import math
import sys
from xml.sax.saxutils import escape

COLOURS = ["#1f5fa8", "#c2410c", "#15803d", "#7e22ce"]
W, H = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 52
LEGEND = 360  # its width, from the right edge: room for a label and "validation (best x)"


def read_series(spec):
    try:
        label, path, per_step = spec.rsplit(":", 2)
        per_step = float(per_step)
    except ValueError:
        sys.exit(f"plot_curves: '{spec}' is not LABEL:LOG:TOKENS_PER_STEP")
    points = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                points.append((row["step"] * per_step / 1e6, row["train_loss"], row["val_loss"]))
    if not points:
        sys.exit(f"plot_curves: {path} has no rows")
    return label, points


def nice_ticks(lo, hi, count=6):
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if (hi - lo) / step <= count:
            break
    first = step * int(lo / step)
    ticks = []
    t = first
    while t <= hi + 1e-9:
        if t >= lo - 1e-9:
            ticks.append(round(t, 10))
        t += step
    return ticks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("series", nargs="+")
    ap.add_argument("--title", default="Training curves")
    ap.add_argument("--target", type=float)
    args = ap.parse_args()
    series = [read_series(s) for s in args.series]

    xmax = max(p[0] for _, pts in series for p in pts)
    losses = [v for _, pts in series for p in pts for v in p[1:]]
    ylo = min(losses + ([args.target] if args.target else []))
    yhi = min(max(losses), 3.0)  # the first evaluations sit far above the rest
    ylo, yhi = ylo - 0.05, yhi + 0.05

    def sx(x):
        return LEFT + (W - LEFT - RIGHT) * x / xmax

    def sy(y):
        return TOP + (H - TOP - BOTTOM) * (yhi - min(y, yhi)) / (yhi - ylo)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="#fff"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{escape(args.title)}</text>']
    for t in nice_ticks(0, xmax):
        out.append(f'<line x1="{sx(t):.1f}" y1="{TOP}" x2="{sx(t):.1f}" y2="{H - BOTTOM}" stroke="#eee"/>')
        out.append(f'<text x="{sx(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{t:g}</text>')
    for t in nice_ticks(ylo, yhi):
        out.append(f'<line x1="{LEFT}" y1="{sy(t):.1f}" x2="{W - RIGHT}" y2="{sy(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
               'fill="none" stroke="#888"/>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 12}" text-anchor="middle">'
               'millions of training tokens (chars)</text>')
    out.append(f'<text transform="translate(16 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
               'text-anchor="middle">loss, nats per char</text>')
    if args.target:
        out.append(f'<line x1="{LEFT}" y1="{sy(args.target):.1f}" x2="{W - RIGHT}" '
                   f'y2="{sy(args.target):.1f}" stroke="#444" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{W - RIGHT - 4}" y="{sy(args.target) - 4:.1f}" text-anchor="end" '
                   f'fill="#444">target {args.target:g}</text>')
    for i, (label, pts) in enumerate(series):
        c = COLOURS[i % len(COLOURS)]
        for col, dash in ((2, ""), (1, ' stroke-dasharray="5 4"')):
            path = " ".join(f"{sx(p[0]):.1f},{sy(p[col]):.1f}" for p in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.6"{dash}/>')
        best = min(p[2] for p in pts)
        y, x = TOP + 18 + 34 * i, W - RIGHT - LEGEND
        out.append(f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" '
                   f'stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{x + 30}" y="{y + 4}">{escape(label)}: validation '
                   f'(best {best:.4f})</text>')
        out.append(f'<line x1="{x}" y1="{y + 15}" x2="{x + 24}" y2="{y + 15}" '
                   f'stroke="{c}" stroke-width="2" stroke-dasharray="5 4"/>')
        out.append(f'<text x="{x + 30}" y="{y + 19}">{escape(label)}: training batch</text>')
    out.append("</svg>")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
