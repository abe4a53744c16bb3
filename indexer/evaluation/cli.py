"""`python -m indexer.evaluation <task> PATH` (and `vector-primer eval <task>`): run one
evaluation through the engine, or with `--url` through a running service, print a table and
optionally write JSON.

Exit codes: 0 done, 2 failure with a one-line reason (usage, unreadable data, service errors),
130 interrupted. Progress bars go to stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import VPError
from ..index import KINDS, METRICS
from .analogy import METHODS
from .backend import MODES, Backend, EngineBackend, ProgressFactory, no_progress
from .report import EvalResult

EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED = 0, 2, 130
PROG = "python -m indexer.evaluation"


def default_data_dir() -> Path:
    """Where the engine keeps evaluation collections (embedded corpora are reused from here)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "vector-primer" / "eval"


def _csv(allowed: Sequence[str], everything: str | None = None) -> Any:
    def parse(value: str) -> list[str]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if everything is not None and items == [everything]:
            return list(allowed)
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"{value!r}: choose from {', '.join(allowed)}"
                + (f" or {everything}" if everything else "")
            )
        return items

    return parse


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return n


def make_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Evaluate embeddings and search end to end, through the engine or (--url) "
        "a running service: STS, BEIR retrieval, word analogies, word similarity.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="evaluate through this running service's HTTP API")
    common.add_argument("--api-key", help="the service's API key (env VP_API_KEY)")
    common.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="with --url: wait up to S seconds for the service to be ready (default: fail at once)",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        help=f"engine data directory for evaluation collections (default {default_data_dir()})",
    )
    common.add_argument("--embedder", help="engine embedder (default all-MiniLM-L6-v2)")
    common.add_argument("--out", type=Path, help="also write the result as JSON to this file")
    common.add_argument("--json", action="store_true", help="print JSON instead of the table")
    common.add_argument("--seed", type=int, default=0, help="seed for --limit samples")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument("--keep", action="store_true", help="keep the per-kind collections")
    sub = parser.add_subparsers(dest="task", metavar="{sts,retrieval,analogy,wordsim}")
    sub.required = True

    sts = sub.add_parser(
        "sts", parents=[common], help="sentence pairs: Spearman/Pearson of cosine vs gold"
    )
    sts.add_argument("path", type=Path, help="STS Benchmark csv or s1<TAB>s2<TAB>score TSV")
    sts.add_argument("--limit", type=_positive, help="a random sample of N pairs")
    sts.add_argument(
        "--pairs-per-request",
        type=_positive,
        default=1,
        help="with --url: pairs per /v1/similarity call (default 1: the 'pair' answer)",
    )

    ret = sub.add_parser(
        "retrieval", parents=[common], help="BEIR folder: nDCG@10, recall@k, MRR@10, ms/query"
    )
    ret.add_argument("path", type=Path, help="folder with corpus.jsonl[.gz], queries.jsonl, qrels/")
    ret.add_argument("--split", default="test", help="qrels/<split>.tsv (default test)")
    ret.add_argument(
        "--metric", type=_csv(METRICS), default=["cosine"], help="comma-separated (cosine)"
    )
    ret.add_argument(
        "--index",
        type=_csv(KINDS, "all"),
        default=["flat"],
        help="comma-separated index kinds, or all (default flat; the first is the reference)",
    )
    ret.add_argument(
        "--modes",
        type=_csv(list(MODES), "all"),
        default=["vector"],
        help="search modes on the first kind, comma-separated, or all (engine only; default "
        "vector): " + ", ".join(MODES),
    )
    ret.add_argument("--k", type=_positive, default=100, help="hits per query, for recall@k")
    ret.add_argument("--params", type=json.loads, help='index params as JSON, e.g. {"M": 16}')
    ret.add_argument("--queries", type=_positive, help="a sample of N queries")
    ret.add_argument(
        "--distractors", type=_positive, help="with a sample: N documents besides the judged ones"
    )

    ana = sub.add_parser(
        "analogy", parents=[common], help="Google questions-words file or BATS folder: accuracy"
    )
    ana.add_argument("path", type=Path, help="questions-words.txt-style file or BATS 3.0 folder")
    ana.add_argument("--methods", type=_csv(METHODS), default=list(METHODS), help="comma-separated")
    ana.add_argument(
        "--sections",
        type=lambda v: [s for s in v.split(",") if s],
        help="keep sections whose names start with these (comma-separated, e.g. I01,E01)",
    )
    ana.add_argument("--limit", type=_positive, help="a random sample of N questions")
    ana.add_argument(
        "--check",
        type=int,
        default=50,
        metavar="N",
        help="engine only: answer N sampled questions with indexer.analogy too (default 50)",
    )

    ws = sub.add_parser("wordsim", parents=[common], help="word pairs (MEN, TSV): Spearman")
    ws.add_argument("path", type=Path, help="'w1 w2 score' file (MEN) or TSV")
    ws.add_argument("--limit", type=_positive, help="a random sample of N pairs")
    return parser


def _progress(quiet: bool) -> ProgressFactory:
    if quiet:
        return no_progress
    from ..jobs import progress_bar

    return lambda total, desc, unit: progress_bar(total, desc, unit)


def _backend(args: argparse.Namespace) -> tuple[Backend, Any]:
    """The backend and what to close afterwards."""
    progress = _progress(args.quiet)
    if args.url:
        from .remote import HttpBackend

        remote = HttpBackend(
            args.url,
            api_key=args.api_key or os.environ.get("VP_API_KEY"),
            pairs_per_request=getattr(args, "pairs_per_request", 1),
            progress=progress,
            keep=args.keep,
        )
        if args.wait > 0:
            remote.wait_ready(args.wait)
        return remote, remote
    from ..engine import Engine
    from ..settings import load_settings

    overrides: dict[str, Any] = {"data_dir": args.data_dir or default_data_dir()}
    if args.embedder:
        overrides["embedder"] = args.embedder
    engine = Engine(load_settings(**overrides))
    return EngineBackend(engine, progress=progress, keep=args.keep), engine


def run(args: argparse.Namespace, backend: Backend) -> EvalResult:
    from . import tasks

    if args.task == "sts":
        return tasks.evaluate_sts(args.path, backend, limit=args.limit, seed=args.seed)
    if args.task == "wordsim":
        return tasks.evaluate_wordsim(args.path, backend, limit=args.limit, seed=args.seed)
    if args.task == "analogy":
        return tasks.evaluate_analogy(
            args.path,
            backend,
            methods=tuple(args.methods),
            sections=args.sections,
            limit=args.limit,
            seed=args.seed,
            check=args.check,
        )
    kinds = [(m, i) for m in args.metric for i in args.index]
    return tasks.evaluate_retrieval(
        args.path,
        backend,
        split=args.split,
        kinds=kinds,
        k=args.k,
        params=args.params,
        queries=args.queries,
        distractors=args.distractors,
        seed=args.seed,
        modes=args.modes,
    )


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    parser = make_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code or 0)
    if args.task == "retrieval" and args.distractors and not args.queries:
        print(f"{prog}: error: --distractors needs --queries", file=sys.stderr)
        return EXIT_ERROR
    closer: Any = None
    try:
        backend, closer = _backend(args)
        result = run(args, backend)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (VPError, ValueError, OSError) as e:
        detail = e.detail if isinstance(e, VPError) else str(e)
        print(f"{prog}: error: {detail}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if closer is not None:
            closer.close()
    if args.out:
        result.write_json(args.out)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return EXIT_OK
