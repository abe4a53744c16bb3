"""``python -m primer_math``: the four intuitions from a terminal.

    python -m primer_math softmax 2.0 1.0 0.1 --temperature 0.5
    python -m primer_math attention "the cat sat on the mat"
    python -m primer_math descent --optimizer adam --surface rosenbrock
    python -m primer_math explain attention
    python -m primer_math plot {softmax|attention|descent|complexity} --out FILE.png

Every command takes ``--json`` for machine-readable output (``plot`` writes a file instead).
``attention TEXT`` needs the engine's embedder (``indexer.embed``), imported only for that command:
primer_math itself depends on numpy alone.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from primer_math.arrays import Array
from primer_math.attention import measure_complexity, self_attention
from primer_math.descent import OPTIMIZERS, compare_learning_rates, run, suggested_lr
from primer_math.explain import TOPICS, UnknownTopic, explain
from primer_math.softmax import entropy, sampling_distribution, softmax
from primer_math.surfaces import SURFACES

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def _emit(as_json: bool, data: dict[str, object], lines: list[str]) -> None:
    """Print JSON for machines, or the lines for people."""
    print(json.dumps(data, indent=2) if as_json else "\n".join(lines))


def cmd_softmax(args: argparse.Namespace) -> int:
    """Print the vote for some logits, after temperature and the top-k / top-p cut."""
    tempered = softmax(args.logits, args.temperature)
    probs, kept = sampling_distribution(args.logits, args.temperature, args.top_k, args.top_p)
    H = float(entropy(tempered))
    rows = [
        f"  {i:>3}  {z:>9.4g}  {t:8.4f}  {p:8.4f}  {'kept' if i in kept else ''}"
        for i, (z, t, p) in enumerate(zip(args.logits, tempered, probs, strict=True))
    ]
    head = [f"softmax at T={args.temperature:g}", "    i      logit  softmax  sampled"]
    tail = [f"entropy {H:.4f} nats (uniform: {np.log(len(probs)):.4f})"]
    data = dict(logits=args.logits, temperature=args.temperature, probs=tempered.tolist(),
                sampled_probs=probs.tolist(), kept=kept.tolist(), entropy=H)  # fmt: skip
    _emit(args.json, data, head + rows + tail)
    return 0


def _format_matrix(tokens: list[str], A: Array) -> list[str]:
    """A weights matrix as aligned rows, labelled with the tokens."""
    width = max(6, *(len(t) for t in tokens))
    head = " " * (width + 2) + " ".join(f"{t[:6]:>6}" for t in tokens)
    cells = [" ".join(f"{w:6.3f}" for w in row) for row in A]
    rows = [f"{t:>{width}}  {c}" for t, c in zip(tokens, cells, strict=True)]
    return [head, *rows]


def cmd_attention(args: argparse.Namespace) -> int:
    """Self-attention weights over the real token embeddings of a sentence."""
    from indexer.embed import load_embedder  # the engine owns the model; only this command needs it

    tokens, X = load_embedder(args.embedder).token_embeddings(args.text)
    _, A = self_attention(X, causal=args.causal)
    others = A - np.eye(len(tokens)) * A  # each token's strongest link besides itself
    links = [f"  {t} -> {tokens[j]} ({A[i, j]:.3f})" for i, (t, j) in
             enumerate(zip(tokens, others.argmax(axis=1).tolist(), strict=True))]  # fmt: skip
    head = f"self-attention over {len(tokens)} tokens ({args.embedder}); rows sum to 1"
    lines = [head, *_format_matrix(tokens, A), "strongest link to another token:", *links]
    _emit(args.json, {"tokens": tokens, "weights": A.tolist(), "embedder": args.embedder}, lines)
    return 0


def cmd_descent(args: argparse.Namespace) -> int:
    """Roll down a surface and print the path at about ten points."""
    lr = args.lr if args.lr is not None else suggested_lr(args.surface, args.optimizer)
    t = run(args.surface, args.optimizer, lr, args.steps, args.start)
    last, every = len(t.points) - 1, max(1, len(t.points) // 10)
    rows = [f"  {i:>6}  ({x:9.4f}, {y:9.4f})  {t.losses[i]:.6g}"
            for i, (x, y) in enumerate(t.points) if i % every == 0 or i == last]  # fmt: skip
    head = [f"{args.optimizer} on {args.surface}, lr={lr:g}, {last} steps",
            "    step   point                   loss"]  # fmt: skip
    minimum = SURFACES[args.surface].minimum
    tail = ["DIVERGED (lr too large?)" if t.diverged else f"minimum at {minimum}"]
    data = dict(surface=args.surface, optimizer=args.optimizer, lr=lr, diverged=t.diverged,
                trajectory=t.points.tolist(), losses=t.losses.tolist())  # fmt: skip
    _emit(args.json, data, head + rows + tail)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print one explanation, or the list of topics."""
    if args.topic is None:
        _emit(args.json, {"topics": list(TOPICS)}, ["topics: " + ", ".join(TOPICS)])
        return 0
    try:
        e = explain(args.topic)
    except UnknownTopic as err:
        print(err.args[0], file=sys.stderr)
        return 2
    _emit(args.json, e.as_dict(), [e.as_text()])
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw one picture to a PNG file."""
    from primer_math import plots

    if args.kind == "softmax":
        png = plots.softmax_temperature_png(args.logits, args.temperatures)
    elif args.kind == "attention":
        from indexer.embed import load_embedder

        tokens, X = load_embedder(args.embedder).token_embeddings(args.text)
        png = plots.attention_heatmap_png(self_attention(X, causal=args.causal)[1], tokens)
    elif args.kind == "descent":
        runs = compare_learning_rates(args.surface, args.optimizer, args.steps, args.lr)
        png = plots.descent_png(args.surface, [(f"{args.optimizer} {k}", t) for k, t in runs])
    else:
        png = plots.complexity_png(measure_complexity(tuple(args.ns), repeats=args.repeats))
    Path(args.out).write_bytes(png)
    print(f"wrote {args.out} ({len(png)} bytes)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per intuition, plus explain and plot."""
    parser = argparse.ArgumentParser(
        prog="python -m primer_math", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("softmax", help="softmax of some logits")
    p.add_argument("logits", nargs="+", type=float)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p = sub.add_parser("attention", help="self-attention over a sentence's token embeddings")
    p.add_argument("text")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="e.g. all-MiniLM-L6-v2, hash-384")
    p.add_argument("--causal", action="store_true")
    p = sub.add_parser("descent", help="gradient descent on a 2-D surface")
    _descent_options(p)
    p.add_argument("--start", nargs=2, type=float, metavar=("X", "Y"))
    p = sub.add_parser("explain", help="explain a topic: " + ", ".join(TOPICS))
    p.add_argument("topic", nargs="?")
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="print JSON")
    p = sub.add_parser("plot", help="draw a PNG")
    p.add_argument("kind", choices=["softmax", "attention", "descent", "complexity"])
    p.add_argument("--out", required=True, help="the PNG file to write")
    p.add_argument("--logits", nargs="+", type=float, default=[2.0, 1.0, 0.1])
    p.add_argument("--temperatures", nargs="+", type=float, default=[0.1, 0.5, 1.0, 1.5, 5.0])
    p.add_argument("--text", default="the cat sat on the mat")
    p.add_argument("--embedder", default=DEFAULT_EMBEDDER)
    p.add_argument("--causal", action="store_true")
    _descent_options(p)
    p.add_argument("--ns", nargs="+", type=int, default=[256, 512, 1024, 2048])
    p.add_argument("--repeats", type=int, default=5)
    return parser


def _descent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--surface", choices=list(SURFACES), default="rosenbrock")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    p.add_argument("--lr", type=float, help="default: a rate that works on this surface")
    p.add_argument("--steps", type=int, default=1000)


COMMANDS = {
    "softmax": cmd_softmax,
    "attention": cmd_attention,
    "descent": cmd_descent,
    "explain": cmd_explain,
    "plot": cmd_plot,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status is 0 on success, 2 on bad input.

    >>> main(["explain"])
    topics: vectors, softmax, attention, loss, descent
    0
    """
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
