"""`python -m indexer` (and `vector-primer index`): build, words, query, analogy, info, list, drop,
rebuild, backup, restore.

Results go to stdout (aligned text, or JSON with `--json`); progress, bad records and errors go to
stderr. Exit codes: 0 done (bad records are reported like compiler warnings but do not fail the
job, unless `--strict`), 1 `--strict` and some records were bad, 2 failure with a one-line reason
(usage, missing input, unknown collection, mismatching spec, storage), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import jobs, readers
from .analogy import analogy, parse_expression
from .backup import new_backup_id
from .collection import Query
from .engine import Engine
from .errors import CollectionNotFound, VPError
from .index import KINDS, METRICS
from .settings import Settings, load_settings
from .words import build_words

EXIT_OK, EXIT_BAD_RECORDS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad option value that argparse cannot check by itself."""


# ---- the parser -----------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser, suppress: bool) -> None:
    """Options accepted both before and after the subcommand."""
    d: Any = argparse.SUPPRESS if suppress else None
    p.add_argument("--data-dir", default=d, help="where collections live (env VP_DATA_DIR)")
    p.add_argument(
        "--embedder",
        default=d,
        help="embedder for new collections: all-MiniLM-L6-v2 (default), a "
        "sentence-transformers path, or hash-<dim> (env VP_EMBEDDER)",
    )
    p.add_argument("--json", action="store_true", default=d, help="machine-readable output")
    p.add_argument(
        "--debug", action="store_true", default=d, help="show the traceback of unexpected errors"
    )


def make_parser(prog: str = "python -m indexer") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="vector-primer batch jobs: build collections from "
        "files, query them, try analogies.",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, suppress=True)
        return p

    p = cmd("build", "index a JSONL / CSV / text file or a folder of .txt/.md files")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("--input", "-i", required=True, help="file, folder, or - for stdin")
    p.add_argument("--format", "-f", choices=readers.FORMATS, default="auto")
    p.add_argument(
        "--id-field",
        help="JSONL/CSV field holding the id (default: 'id' if present, else <file stem>:<line>)",
    )
    p.add_argument(
        "--text-field",
        default="text",
        help="field(s) holding the text; several, comma-separated, are joined",
    )
    p.add_argument(
        "--metadata-fields",
        help="comma-separated fields to keep as metadata (default: every other field; '' for none)",
    )
    p.add_argument("--id-prefix", help="plain text: ids are <prefix>:<line> (default: stem)")
    p.add_argument("--batch-size", type=int, default=jobs.DEFAULT_BATCH)
    p.add_argument("--metric", choices=METRICS, help="for a new collection (default cosine)")
    p.add_argument("--index", choices=KINDS, help="for a new collection (default flat)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="index parameter, e.g. M=32, ef_search=128, nlist=256 (repeatable)",
    )
    p.add_argument(
        "--chunk",
        action="store_true",
        help="a new collection splits texts longer than the model takes into passages of "
        "whole sentences (without it, such texts are embedded from their start and reported)",
    )
    p.add_argument(
        "--chunk-tokens",
        type=int,
        metavar="N",
        help="with --chunk: tokens per passage (default: the model's limit, 254 for MiniLM)",
    )
    p.add_argument(
        "--chunk-overlap",
        type=int,
        metavar="N",
        help="with --chunk: tokens consecutive passages share (default 32, or a quarter of N)",
    )
    p.add_argument("--url", help="send the documents to a running service instead")
    p.add_argument(
        "--api-key", default=os.environ.get("VP_API_KEY"), help="with --url (env VP_API_KEY)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 if any record was bad")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="embed on a Ray cluster (ADDRESS or 'auto') and write --shards shards "
        "(needs the ray extra: pip install 'vector-primer[ray]')",
    )
    p.add_argument("--shards", type=int, default=2, help="with --ray: number of shards")
    p.add_argument("--actors", type=int, default=2, help="with --ray: embedder actors")

    p = cmd("words", "build the word collection for analogies from the model's vocabulary")
    p.add_argument("--collection", "-c", default="words")
    p.add_argument("--words-file", help="whitespace-separated words instead of the vocabulary")
    p.add_argument("--batch-size", type=int, default=512)

    p = cmd("query", "nearest documents to a text")
    p.add_argument("--collection", "-c", required=True)
    p.add_argument("text", nargs="+")
    p.add_argument("--k", "-k", type=int, default=10)
    p.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"year": {"$gte": 2020}}\'')
    p.add_argument("--exact", action="store_true", help="bypass the ANN index")

    p = cmd("analogy", "word arithmetic, e.g. analogy king - man + woman")
    p.add_argument("expression", nargs="+")
    p.add_argument("--collection", "-c", default="words")
    p.add_argument("--method", choices=("3cosadd", "3cosmul"), default="3cosadd")
    p.add_argument("--k", "-k", type=int, default=5)
    p.add_argument("--include-inputs", action="store_true", help="do not exclude input terms")

    for name, help in (
        ("info", "describe a collection"),
        ("rebuild", "rebuild the ANN index from the stored vectors and publish a snapshot"),
    ):
        cmd(name, help).add_argument("name")
    cmd("list", "list collections")
    p = cmd("drop", "delete a collection and its documents")
    p.add_argument("name")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p = cmd("backup", "copy a collection, consistently and checksummed, while writes go on")
    p.add_argument("name")
    p.add_argument("dest", help="a new folder (or an existing one to put the backup in)")
    p = cmd("restore", "restore a backup folder as a new collection, checksums verified first")
    p.add_argument("src", help="a backup folder made by `backup`")
    p.add_argument("--as", dest="as_name", required=True, metavar="NAME", help="new collection")
    return parser


# ---- output ---------------------------------------------------------------------------------
def _out(text: str = "") -> None:
    print(text, file=sys.stdout)


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _json(obj: Any) -> None:
    _out(json.dumps(obj, indent=2, ensure_ascii=False))


def _short(value: Any, width: int) -> str:
    s = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    s = " ".join(s.split())
    return s if len(s) <= width else s[: width - 1] + "…"


def table(headers: list[str], rows: list[list[Any]], right: set[int] | None = None) -> str:
    """Plain aligned columns; numbers (the `right` columns) right-aligned."""
    right = right or set()
    cells = [headers, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for r in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


# ---- commands -------------------------------------------------------------------------------
def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair!r} must look like KEY=VALUE, e.g. M=32")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            raise UsageError(f"--param {key.strip()} must be an integer, got {value!r}") from None
    return out


def _chunking(args: argparse.Namespace) -> dict[str, int] | None:
    """`--chunk [--chunk-tokens N] [--chunk-overlap M]` -> the collection's chunking (the
    engine fills in what is not given), or None."""
    given = {"max_tokens": args.chunk_tokens, "overlap": args.chunk_overlap}
    if not args.chunk:
        if any(v is not None for v in given.values()):
            raise UsageError("--chunk-tokens and --chunk-overlap need --chunk")
        return None
    if args.ray:
        raise UsageError("--chunk works with a local or --url build, not with --ray")
    return {k: v for k, v in given.items() if v is not None}


def cmd_build(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    chunking = _chunking(args)
    fields = readers.Fields.parse(args.id_field, args.text_field, args.metadata_fields)
    items = readers.read_records(args.input, args.format, fields, args.id_prefix)
    bar = jobs.progress_bar(lambda: readers.count_hint(args.input, args.format), args.collection)

    def on_bad(b: readers.BadRecord) -> None:
        (bar.write if bar is not None else _err)(str(b))  # keeps the bar intact

    summary = jobs.BuildSummary(collection=args.collection)
    kw: dict[str, Any] = dict(
        batch_size=args.batch_size,
        metric=args.metric,
        index=args.index,
        params=_params(args.param),
        on_bad=on_bad,
        summary=summary,
        progress=bar.update if bar is not None else None,
    )
    try:
        if args.ray:
            from . import ray_jobs

            engine = get_engine()
            update = {"embedder": args.embedder} if args.embedder else {}
            kw.pop("metric"), kw.pop("index"), kw.pop("params")
            out = ray_jobs.build_ray(
                engine.settings.model_copy(update=update),
                args.collection,
                items,
                args.shards,
                address=args.ray,
                actors=args.actors,
                metric=args.metric,
                index=args.index,
                params=_params(args.param),
                **kw,
            )
            _err(f"shards {out.shards}; records embedded per node {out.nodes}")
        elif args.url:
            jobs.build_http(
                args.url,
                args.collection,
                items,
                api_key=args.api_key,
                embedder=args.embedder,
                chunking=chunking,
                **kw,
            )
        else:
            jobs.build(
                get_engine(),
                args.collection,
                items,
                embedder=args.embedder,
                chunking=chunking,
                **kw,
            )
    except KeyboardInterrupt:
        _err(f"interrupted: {summary.line()}; re-run to resume")
        return EXIT_INTERRUPTED
    except VPError as e:
        if summary.read:
            e.detail += f" (stopped after: {summary.line()}; re-run to resume)"
        raise
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        _json(summary.to_json())
    else:
        held = f"; {args.collection!r} holds {summary.total}" if summary.total is not None else ""
        _out(summary.line() + held)
        for line in summary.truncation_report():
            _out(line)
    return EXIT_BAD_RECORDS if args.strict and summary.bad else EXIT_OK


def _read_words(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise readers.InputError(
            f"cannot read words file {path}: {e}", field="words_file"
        ) from None
    return [
        w for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split()
    ]


def cmd_words(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()

    start = time.monotonic()
    if args.words_file:
        words = _read_words(args.words_file)
    else:
        words = engine.embedder(args.embedder).vocabulary()
    if not words:
        raise readers.InputError(
            f"no words: {args.words_file or f'embedder {engine.embedder(args.embedder).name!r}'}"
            " gives none; pass --words-file",
            field="words_file",
        )
    try:
        before = engine.collection(args.collection).count()
    except CollectionNotFound:
        before = 0
    bar = jobs.progress_bar(len(set(words)), args.collection, unit="word")
    try:
        col = build_words(
            engine, args.collection, words, args.batch_size, bar.update if bar is not None else None
        )
    finally:
        if bar is not None:
            bar.close()
    col.snapshot()
    count, seconds = col.count(), time.monotonic() - start
    if args.json:
        _json(
            {
                "collection": col.name,
                "count": count,
                "added": count - before,
                "seconds": round(seconds, 3),
            }
        )
    else:
        _out(f"{col.name!r} holds {count} words ({count - before} new) in {seconds:.1f} s")
    return EXIT_OK


def cmd_query(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    where = None
    if args.filter is not None:
        try:
            where = json.loads(args.filter)
        except ValueError as e:
            raise UsageError(f"--filter is not valid JSON: {e}") from None
    col = engine.collection(args.collection, embedder=args.embedder)
    text = " ".join(args.text)
    hits = col.search(Query(text=text, k=args.k, filter=where, exact=args.exact))
    order = "distance (lower is better)" if col.metric == "l2" else "similarity (higher is better)"
    if args.json:
        _json(
            {
                "collection": col.name,
                "query": text,
                "metric": col.metric,
                "score": order,
                "hits": [
                    {"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata}
                    for h in hits
                ],
            }
        )
        return EXIT_OK
    _out(f"{len(hits)} hits in {col.name!r}, score = {col.metric} {order}")
    rows = [
        [
            i,
            f"{h.score:.4f}",
            _short(h.id, 30),
            _short(h.text or "", 60),
            _short(h.metadata, 40) if h.metadata else "",
        ]
        for i, h in enumerate(hits, 1)
    ]
    if rows:
        _out(table(["#", "score", "id", "text", "metadata"], rows, right={0, 1}))
    return EXIT_OK


def cmd_analogy(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    expr = " ".join(args.expression)
    positive, negative = parse_expression(expr)
    col = engine.collection(args.collection, embedder=args.embedder)
    res = analogy(col, positive, negative, args.k, args.method, not args.include_inputs)
    if args.json:
        _json(
            {
                "collection": col.name,
                "expression": expr,
                "positive": positive,
                "negative": negative,
                "method": res.method,
                "terms": res.terms,
                "hits": [
                    {"id": h.id, "score": h.score, "text": h.text, "cosines": h.cosines}
                    for h in res.hits
                ],
            }
        )
        return EXIT_OK
    excluded = "inputs included" if args.include_inputs else "inputs excluded"
    _out(f"{expr}  ({res.method} over {col.name!r}, {excluded})")
    terms = [t["term"] for t in res.terms]
    rows = [
        [i, _short(h.id, 30), f"{h.score:.4f}", *[f"{h.cosines[t]:.3f}" for t in terms]]
        for i, h in enumerate(res.hits, 1)
    ]
    headers = ["#", "term", "score", *[f"cos({t})" for t in terms]]
    _out(table(headers, rows, right={0, *range(2, len(headers))}))
    return EXIT_OK


def cmd_info(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    info = engine.collection(args.name).describe()
    if args.json:
        _json(info)
    else:
        width = max(map(len, info))
        for key, value in info.items():
            _out(f"{key.ljust(width)}  {value if isinstance(value, str) else json.dumps(value)}")
    return EXIT_OK


def cmd_list(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    cols = engine.list_collections()
    if args.json:
        _json(cols)
    elif not cols:
        _out(f"no collections in {engine.data_dir}")
    else:
        rows = [
            [c["name"], c["count"], c["metric"], c["index"], c["dim"], c["embedder"] or "-"]
            for c in cols
        ]
        _out(table(["name", "count", "metric", "index", "dim", "embedder"], rows, right={1, 4}))
    return EXIT_OK


def cmd_drop(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    count = engine.collection(args.name).count()
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to drop {args.name!r} ({count} documents) without --yes")
        sys.stderr.write(f"drop collection {args.name!r} and its {count} documents? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            _err("not dropped")
            return EXIT_ERROR
    engine.drop_collection(args.name)
    if args.json:
        _json({"dropped": args.name, "count": count})
    else:
        _out(f"dropped {args.name!r} ({count} documents)")
    return EXIT_OK


def cmd_rebuild(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    engine = get_engine()
    start = time.monotonic()
    col = engine.collection(args.name)
    col.rebuild()
    info, seconds = col.describe(), time.monotonic() - start
    if args.json:
        _json({**info, "seconds": round(seconds, 3)})
    else:
        ann = (
            "exact flat index, nothing to rebuild"
            if not info["ann"]["built"]
            else (f"{info['index']} index over {info['ann']['ann_vectors']} vectors")
        )
        _out(f"rebuilt {col.name!r}: {ann} ({info['count']} documents) in {seconds:.1f} s")
    return EXIT_OK


def cmd_backup(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    if dest.is_dir():
        dest = dest / new_backup_id(args.name)
    info = get_engine().backup(args.name, dest)
    if args.json:
        _json({**info, "path": str(dest)})
    else:
        _out(
            f"backed up {args.name!r} ({info['count']} documents, seq {info['seq']}) to {dest}"
            f"\nsha256 {info['checksum']}"
        )
    return EXIT_OK


def cmd_restore(get_engine: Callable[[], Engine], args: argparse.Namespace) -> int:
    col = get_engine().restore(Path(args.src), args.as_name)
    info = col.describe()
    if args.json:
        _json(info)
    else:
        _out(f"restored {args.src} as {col.name!r} ({info['count']} documents, seq {info['seq']})")
    return EXIT_OK


COMMANDS: dict[str, Callable[[Callable[[], Engine], argparse.Namespace], int]] = {
    "build": cmd_build,
    "words": cmd_words,
    "query": cmd_query,
    "analogy": cmd_analogy,
    "info": cmd_info,
    "list": cmd_list,
    "drop": cmd_drop,
    "rebuild": cmd_rebuild,
    "backup": cmd_backup,
    "restore": cmd_restore,
}
WRITES = {"build", "words", "rebuild"}  # commands whose ANN snapshots are published on exit


# ---- entry point ----------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("data_dir", "embedder") if (v := getattr(args, k)) is not None}
    return load_settings(**overrides)


def _known(engine: Engine) -> str:
    names = sorted(
        p.name
        for p in engine.data_dir.iterdir()
        if not p.name.startswith(".") and (p / "manifest.json").exists()
    )
    return f"; collections: {', '.join(names)}" if names else f"; {engine.data_dir} has none"


def main(argv: Sequence[str] | None = None) -> int:
    # `vector-primer index ...` (service.cli) delegates here: say so in the usage lines
    launched_as = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    parser = make_parser(
        "vector-primer index" if launched_as == "vector-primer" else "python -m indexer"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse has printed usage and the reason
        return int(e.code or 0)
    engine: Engine | None = None

    def get_engine() -> Engine:  # made on first use: `build --url` never touches a data dir
        nonlocal engine
        if engine is None:
            engine = Engine(settings)
        return engine

    try:
        settings = _settings(args)
        return COMMANDS[args.command](get_engine, args)
    except UsageError as e:
        _err(f"error: {e}")
    except CollectionNotFound as e:
        hint = _known(engine) if engine else ""
        if args.command == "analogy":
            hint += f" (build one with: {parser.prog} words)"
        _err(f"error: {e.detail}{hint}")
    except VPError as e:
        _err(f"error: {e.detail}")
    except ValidationError as e:  # a VP_* setting of the wrong type
        first = e.errors()[0]
        _err(f"error: setting {'.'.join(map(str, first['loc']))}: {first['msg']}")
    except ValueError as e:  # check_environment: unknown VP_* variable
        if getattr(args, "debug", False):
            raise
        _err(f"error: {e}")
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `| head` closed stdout: not an error
        sys.stderr.close()
        return EXIT_OK
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        _err(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)")
    finally:
        if engine is not None and args.command in WRITES:
            engine.close()
    return EXIT_ERROR
