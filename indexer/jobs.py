"""Batch jobs: records -> batches -> collection.upsert, resumable, reporting every bad record.

A build streams records from a reader, skips the ones it cannot use (reporting each with its line),
and upserts the rest in batches with `skip_unchanged=True`: a document whose id and content hash
(text, metadata) are already stored is not embedded again, so re-running a finished or interrupted
build only does the work that is left. Each batch is one durable transaction; a failure part-way
loses nothing that was acknowledged before it.

Duplicate ids within one input: the first record wins and every later one is reported as a bad
record naming the line of the first. (Letting the later one win would need the whole input read
before the first upsert, and would make every re-run re-index the earlier version first.)

Two sinks share the batching and the bad-record fallback: the engine in this process (`build`),
or a running service over HTTP (`build_http`).

The model sees only the first `max_tokens` tokens of a text (254 for all-MiniLM-L6-v2). A local
build counts each indexed text's tokens with the model's tokenizer and reports the documents it
embedded truncated; a collection created with `chunking` splits them into passages instead.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .collection import Collection, DocumentIn
from .engine import Engine
from .errors import CollectionNotFound, EmbedderMismatch, InvalidInput, SpecMismatch, VPError
from .index import validate_spec
from .readers import BadRecord, Item, Record

DEFAULT_BATCH = 256
SHOW_TRUNCATED = 5  # examples of truncated documents a summary names
_DOC_FIELD = re.compile(r"^documents\[\d+\]\.?")


@dataclass(frozen=True)
class Truncated:
    """A document longer than the model takes: its vector comes from its first `limit` tokens."""

    source: str
    line: int
    id: str
    tokens: int
    limit: int

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where} {self.id} ({self.tokens} tokens > {self.limit})"


@dataclass
class BuildSummary:
    collection: str = ""
    read: int = 0  # records read, good and bad
    upserted: int = 0  # embedded and written
    skipped_unchanged: int = 0  # already stored with the same content
    bad: list[BadRecord] = field(default_factory=list)
    seconds: float = 0.0
    total: int | None = None  # documents in the collection afterwards, when known
    max_tokens: int | None = None  # the model's limit the texts were counted against
    truncated: int | None = None  # indexed documents over it; None: not counted
    truncated_shown: list[Truncated] = field(default_factory=list)  # the first few of them

    def line(self) -> str:
        """`read 1000, indexed 990, unchanged 0, bad 10 in 3.2 s`"""
        return (
            f"read {self.read}, indexed {self.upserted}, unchanged {self.skipped_unchanged}, "
            f"bad {len(self.bad)} in {self.seconds:.1f} s"
        )

    def truncation_report(self) -> list[str]:
        """Lines naming the documents the model saw only the start of (none when there are
        none, or when they were not counted)."""
        if not self.truncated:
            return []
        more = self.truncated - len(self.truncated_shown)
        return [
            f"truncated {self.truncated}: longer than the model's {self.max_tokens} tokens, "
            "embedded from their start only (build with --chunk to index them as passages)",
            *(f"  {t}" for t in self.truncated_shown),
            *([f"  ... and {more} more"] if more > 0 else []),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "read": self.read,
            "upserted": self.upserted,
            "skipped_unchanged": self.skipped_unchanged,
            "bad_count": len(self.bad),
            "bad": [{"source": b.source, "line": b.line, "reason": b.reason} for b in self.bad],
            "seconds": round(self.seconds, 3),
            "total": self.total,
            "truncated_count": self.truncated,
            "truncated": [
                {"source": t.source, "line": t.line, "id": t.id, "tokens": t.tokens}
                for t in self.truncated_shown
            ],
            "max_tokens": self.max_tokens,
        }


class JobFailed(VPError):
    """A job stopped part-way; what it did before is durable and a re-run resumes it."""

    status = 500
    code = "job_failed"


class Sink(Protocol):
    def upsert(self, docs: list[DocumentIn]) -> tuple[int, int]:
        """Write a batch, all or nothing: (upserted, skipped). Raises InvalidInput naming
        `documents[i]...` when one document is unacceptable."""
        ...


# ---- the pipeline ---------------------------------------------------------------------------
def dedupe(items: Iterable[Item]) -> Iterator[Item]:
    """The first record of each id; later ones become bad records naming the first's line."""
    first: dict[str, int] = {}
    for item in items:
        if isinstance(item, Record):
            seen = first.get(item.id)
            if seen is not None:
                where = f"line {seen}" if seen else "an earlier file"
                yield BadRecord(
                    item.line, f"duplicate id {item.id!r} (first on {where}); skipped", item.source
                )
                continue
            first[item.id] = item.line
        yield item


def _reason(e: InvalidInput) -> str:
    return _DOC_FIELD.sub("", e.detail) or e.detail


@dataclass(frozen=True)
class TokenBudget:
    """The model's tokenizer (`spans(text)` -> one (start, end) per token) and how many tokens
    of a text it embeds."""

    spans: Callable[[str], list[tuple[int, int]]]
    max_tokens: int

    def note(self, written: list[Record], summary: BuildSummary) -> None:
        """Count the written records the model truncated; name the first few."""
        for rec in written:
            n = len(self.spans(rec.text))
            if n > self.max_tokens:
                summary.truncated = (summary.truncated or 0) + 1
                if len(summary.truncated_shown) < SHOW_TRUNCATED:
                    summary.truncated_shown.append(
                        Truncated(rec.source, rec.line, rec.id, n, self.max_tokens)
                    )


def token_budget(embedder: Any) -> TokenBudget | None:
    """The budget of an embedder that can tokenise (both of ours), else None."""
    spans, limit = getattr(embedder, "token_spans", None), getattr(embedder, "max_tokens", None)
    return TokenBudget(spans, int(limit)) if callable(spans) and limit else None


def _write(
    sink: Sink,
    batch: list[Record],
    summary: BuildSummary,
    on_bad: Callable[[BadRecord], None] | None,
) -> list[Record]:
    """Upsert a batch; returns the records written. A batch is validated before anything is
    embedded, so when the sink refuses `documents[i]` that record is reported and the rest
    retried at once; if it cannot tell which document it refused, each is sent alone."""

    def reject(rec: Record, e: InvalidInput) -> None:
        bad = BadRecord(rec.line, _reason(e), rec.source)
        summary.bad.append(bad)
        if on_bad:
            on_bad(bad)

    pending = list(batch)
    while pending:
        docs = [DocumentIn(id=r.id, text=r.text, metadata=r.metadata) for r in pending]
        try:
            upserted, skipped = sink.upsert(docs)
        except InvalidInput as e:
            where = e.field or ""
            m = re.match(r"^documents\[(\d+)\]", where)
            if m and int(m.group(1)) < len(pending):
                reject(pending.pop(int(m.group(1))), e)
            elif where.startswith("documents") and len(pending) == 1:
                reject(pending.pop(), e)
            elif where.startswith("documents"):
                return [w for rec in pending for w in _write(sink, [rec], summary, on_bad)]
            else:
                raise  # not about one document: the job cannot go on
            continue
        summary.upserted += upserted
        summary.skipped_unchanged += skipped
        return pending
    return []


def run(
    sink: Sink,
    items: Iterable[Item],
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    summary: BuildSummary | None = None,
    budget: TokenBudget | None = None,
) -> BuildSummary:
    """Feed records to a sink in batches. `progress(n)` gets the records consumed per batch;
    `on_bad(b)` each bad record as it is found. `summary`, if given, is filled in place, so a
    caller still has the counts when the job is interrupted. With a `budget`, written records
    longer than the model takes are counted in `summary.truncated`."""
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
        raise InvalidInput("batch size must be an integer in [1, 100000]", field="batch_size")
    summary = summary if summary is not None else BuildSummary()
    start = time.monotonic()
    batch: list[Record] = []
    consumed = 0
    if budget is not None:
        summary.max_tokens, summary.truncated = budget.max_tokens, summary.truncated or 0

    def write(batch: list[Record]) -> None:
        written = _write(sink, batch, summary, on_bad)
        if budget is not None:
            budget.note(written, summary)

    try:
        for item in dedupe(items):
            summary.read += 1
            consumed += 1
            if isinstance(item, BadRecord):
                summary.bad.append(item)
                if on_bad:
                    on_bad(item)
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                write(batch)
                batch = []
                if progress:
                    progress(consumed)
                consumed = 0
        if batch:
            write(batch)
        if progress and consumed:
            progress(consumed)
    finally:
        summary.seconds = time.monotonic() - start
    return summary


# ---- into the engine ------------------------------------------------------------------------
class CollectionSink:
    def __init__(self, col: Collection) -> None:
        self.col = col

    def upsert(self, docs: list[DocumentIn]) -> tuple[int, int]:
        out = self.col.upsert(docs, skip_unchanged=True)
        return out["upserted"], out["skipped"]


def open_or_create(
    engine: Engine,
    name: str,
    metric: str | None = None,
    index: str | None = None,
    params: dict[str, Any] | None = None,
    embedder: str | None = None,
    chunking: dict[str, int] | None = None,
) -> Collection:
    """The collection `name`, created if missing (cosine / flat unless given; `chunking`, e.g.
    {"max_tokens": 254, "overlap": 32} or {} for the engine's defaults, splits long texts into
    passages). An existing one must match whatever was given: a build never silently mixes two
    specs, two embedders, or whole and chunked texts."""
    try:
        col = engine.collection(name, embedder=embedder)
    except CollectionNotFound:
        chunk_kw: dict[str, Any] = {} if chunking is None else {"chunking": chunking or True}
        return engine.create_collection(
            name, metric or "cosine", index or "flat", params, embedder, exist_ok=True, **chunk_kw
        )
    validate_spec(index or col.kind, metric or col.metric, params or {})
    want = {"metric": metric, "index": index}
    for key, value in want.items():
        have = col.manifest.get(key)
        if value is not None and value != have:
            raise EmbedderMismatch(
                f"collection {name!r} exists with {key} {have!r}, not "
                f"{value!r}: drop it or build into another collection",
                field=key,
            )
    for key, value in (params or {}).items():
        have = col.params.get(key)
        if have != value:
            raise EmbedderMismatch(
                f"collection {name!r} exists with {key}={have!r}, not "
                f"{value!r}: drop it or build into another collection",
                field=f"params.{key}",
            )
    if chunking is not None:
        have_chunks: dict[str, Any] | None = col.manifest.get("chunking")
        if have_chunks is None or any(have_chunks.get(k) != v for k, v in chunking.items()):
            raise EmbedderMismatch(
                f"collection {name!r} exists with chunking {have_chunks!r}, not "
                f"{chunking!r}: drop it or build into another collection",
                field="chunking",
            )
    if col.embedder is None:
        raise InvalidInput(
            f"collection {name!r} stores vectors only (no embedder): it cannot index text",
            field="collection",
        )
    return col


def build(
    engine: Engine,
    collection: str,
    records: Iterable[Item],
    batch_size: int = DEFAULT_BATCH,
    metric: str | None = None,
    index: str | None = None,
    params: dict[str, Any] | None = None,
    embedder: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    summary: BuildSummary | None = None,
    chunking: dict[str, int] | None = None,
) -> BuildSummary:
    """Index `records` into `collection` (created if missing), then publish its ANN snapshot.
    Re-running over the same input upserts nothing. Texts longer than the model takes are
    counted in `summary.truncated`, unless the collection splits them (`chunking`)."""
    summary = summary if summary is not None else BuildSummary()
    summary.collection = collection
    col = open_or_create(engine, collection, metric, index, params, embedder, chunking)
    chunked = bool(col.manifest.get("chunking"))
    budget = None if chunked else token_budget(col.embedder)
    if chunked:
        summary.truncated = 0  # long texts become passages that fit
    try:
        run(CollectionSink(col), records, batch_size, progress, on_bad, summary, budget)
    finally:
        col.snapshot()  # publish what was done, even when interrupted
    summary.total = col.count()
    return summary


# ---- into a running service -----------------------------------------------------------------
class HttpSink:
    """Upserts through the Python client: `PUT {url}/v1/collections/{name}/documents` with
    `skip_unchanged`; a refused document comes back as `{error, detail, field}`."""

    def __init__(self, client: Any, name: str) -> None:
        self.client, self.name = client, name

    def upsert(self, docs: list[DocumentIn]) -> tuple[int, int]:
        from vector_primer_client import APIError
        from vector_primer_client import InvalidInput as Refused

        batch = [{"id": d.id, "text": d.text, "metadata": d.metadata or {}} for d in docs]
        try:
            out = self.client.upsert(
                self.name, batch, skip_unchanged=True, batch_size=max(1, len(batch))
            )
        except Refused as e:
            # unknown field: blame "documents", so the job retries each document alone
            detail = e.body.get("detail", e.detail)
            raise InvalidInput(str(detail), field=_field(e.body) or "documents") from None
        except APIError as e:
            raise JobFailed(
                f"upserting into {self.name!r}: HTTP {e.status}: {e.detail}", field="url"
            ) from None
        return int(out["upserted"]), int(out["skipped"])


def _field(err: dict[str, Any]) -> str | None:
    """The field an error names, in the engine's `documents[i].text` form if it can tell."""
    f = err.get("field")
    if isinstance(f, str):
        return f
    detail = err.get("detail")
    if isinstance(detail, str):
        m = _DOC_FIELD.match(detail)
        return m.group(0).rstrip(".") if m else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI 422 shape
        loc = [str(p) for p in detail[0].get("loc", []) if p != "body"]
        if len(loc) >= 2 and loc[0] == "documents":
            return f"documents[{loc[1]}]"
    return None


def build_http(
    url: str,
    collection: str,
    records: Iterable[Item],
    batch_size: int = DEFAULT_BATCH,
    metric: str | None = None,
    index: str | None = None,
    params: dict[str, Any] | None = None,
    embedder: str | None = None,
    progress: Callable[[int], None] | None = None,
    on_bad: Callable[[BadRecord], None] | None = None,
    summary: BuildSummary | None = None,
    api_key: str | None = None,
    client: Any = None,
    timeout: float = 300.0,
    chunking: dict[str, int] | None = None,
) -> BuildSummary:
    """Send records to a running service through `vector_primer_client.Client` (`client` may
    be an httpx client to send with). The collection is created if missing, or reused if it
    has the same spec (a different spec is refused, as in a local build); documents go with
    `skip_unchanged`, so a re-run is as cheap as it is locally."""
    from vector_primer_client import APIError, Client, Conflict, TransportError

    summary = summary if summary is not None else BuildSummary()
    summary.collection = collection
    with Client(url, api_key, timeout=timeout, http=client) as vp:
        try:
            vp.create_collection(
                collection,
                metric=metric or "cosine",  # type: ignore[arg-type]
                index=index or "flat",  # type: ignore[arg-type]
                params=params or None,
                embedder=embedder,
                get_or_create=True,
                chunking=None if chunking is None else (chunking or True),
            )
        except TransportError as e:
            raise JobFailed(f"cannot reach {url}: {e.__cause__ or e}", field="url") from None
        except Conflict as e:
            if e.error != "collection_exists":  # a service without get_or_create says this
                raise SpecMismatch(e.detail, field=e.field) from None
        except APIError as e:
            raise JobFailed(
                f"creating collection {collection!r}: HTTP {e.status}: {e.detail}", field="url"
            ) from None
        try:
            run(HttpSink(vp, collection), records, batch_size, progress, on_bad, summary)
        except TransportError as e:
            raise JobFailed(f"lost {url} part-way: {e.__cause__ or e}", field="url") from None
    return summary


# ---- progress -------------------------------------------------------------------------------
def progress_bar(
    total: int | Callable[[], int | None] | None,
    desc: str,
    unit: str = "doc",
    force: bool = False,
    file: Any = None,
) -> Any:
    """A tqdm bar (rate and ETA) on stderr when it is a terminal, else None. `total` may be a
    function, called only when a bar is shown (counting lines of a big file is not free)."""
    stream = file or sys.stderr
    if not force and not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    from tqdm import tqdm

    if callable(total):
        total = total()
    return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, smoothing=0.1)
