"""Nearest-neighbour search in one collection, one query or a batch.

The hot path makes one hop to a worker thread, not four: FastAPI runs sync dependencies, a sync
endpoint and the re-validation of its response model each in the thread pool, and on two busy
cores every hop waits for the scheduler. So the routes read the engine and the settings from
app.state themselves (even an async dependency costs a pass of FastAPI's solver; EngineDep
here is for other routers), the engine call runs in the collection's search lane (one thread,
service/batching.py), a text query's embedding shares a forward pass with concurrent ones while
no thread waits for it, and the hits are written straight to JSON bytes; the models still
document the routes.

With one lane (two cores) a cheap vector query makes no hop at all: it is answered on the event
loop (`_search_now`), where it cannot wait for anything. Handing it to the lane cost more than
the search: the two threads took the GIL from each other at every system call (SQLite, stat,
FAISS) and the lane waited for the loop to let go of it each time.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from indexer import Collection, Engine, Hit, Query, Settings
from indexer.errors import CollectionNotFound
from indexer.index import set_threads
from service.batching import LANES, batcher_for, lane_for
from service.deps import get_engine, get_settings
from service.models import (
    BatchSearchRequest,
    BatchSearchResponse,
    FastJSONRoute,
    JSONBytes,
    SearchRequest,
    SearchResponse,
    hits_json,
)

router = APIRouter(tags=["search"], route_class=FastJSONRoute)


async def engine_now(request: Request) -> Engine:
    """`get_engine`, run on the event loop (a sync dependency costs a thread hop)."""
    return get_engine(request)


async def settings_now(request: Request) -> Settings:
    return get_settings(request)


EngineDep = Annotated[Engine, Depends(engine_now)]
SettingsDep = Annotated[Settings, Depends(settings_now)]


_thread = threading.local()


def faiss_threads_here(engine: Engine) -> None:
    """FAISS's OpenMP thread count is per calling thread, and the engine sets it only on the
    thread that made it: in a pool thread a search would use every core and leave OpenMP
    threads spinning after it (measured: 11.8 -> 4.5 ms of server CPU per query at 1 conn).
    Once per thread: the call releases the GIL, which costs a wait to get it back."""
    n = engine.settings.faiss_threads
    if getattr(_thread, "faiss_threads", None) != n:
        set_threads(n)
        _thread.faiss_threads = n


def _search(engine: Engine, name: str, query: Query) -> tuple[Collection, list[Hit]]:
    faiss_threads_here(engine)
    col = engine.collection(name)
    return col, col.search(query)


def _embedder_of(engine: Engine, name: str) -> Any:
    return engine.collection(name).embedder


# Answered on the event loop: a vector query of a sublinear index, no filter, MMR or grouping,
# with bounded k, ef and nprobe (about 0.2-0.5 ms at 57k vectors, HNSW), and only for a collection
# this engine has already searched in its lane (opened, its text cache filled) that has no write
# to apply and no writer holding or awaiting its lock. Anything else goes to the lane.
NOW_KINDS = frozenset({"hnsw", "ivf", "ivfpq"})
NOW_MAX_K, NOW_MAX_EF, NOW_MAX_NPROBE = 100, 512, 128
_searched: weakref.WeakKeyDictionary[Engine, dict[str, Collection]] = weakref.WeakKeyDictionary()


def _cheap(q: Query) -> bool:
    return (
        q.mode == "vector"
        and q.vector is not None
        and q.text is None
        and not q.exact
        and q.filter is None
        and q.diversity is None
        and q.candidates is None
        and not q.group_by_document
        and q.k <= NOW_MAX_K
        and (q.ef_search or 0) <= NOW_MAX_EF
        and (q.nprobe or 0) <= NOW_MAX_NPROBE
    )


def _search_now(engine: Engine, name: str, query: Query) -> tuple[Collection, list[Hit]] | None:
    """The search done here on the event loop, or None when it belongs in the lane."""
    if LANES != 1 or not _cheap(query):
        return None
    col = _searched.get(engine, {}).get(name)
    if col is None or col.kind not in NOW_KINDS:
        return None
    try:
        faiss_threads_here(engine)
        hits = col.search_nowait(query)  # None: a write to apply or a writer: the lane does it
        return None if hits is None else (col, hits)
    except CollectionNotFound:  # dropped or replaced: the lane asks the engine again
        _searched.get(engine, {}).pop(name, None)
        return None


def _remember(engine: Engine, name: str, col: Collection) -> None:
    if type(col) is Collection:  # not a sharded one: its shards have their own state
        _searched.setdefault(engine, {})[name] = col


@router.post("/collections/{name}/search", response_model=SearchResponse)
async def search(name: str, req: SearchRequest, request: Request) -> JSONBytes:
    """Nearest documents to a text or a vector, best first, scored by the collection's metric
    (cosine and dot: higher is better; l2: a distance, lower is better)."""
    engine, settings = get_engine(request), get_settings(request)
    req.check_limits(settings)
    query = req.to_query()
    found = _search_now(engine, name, query)
    if found is None:
        lane = lane_for(name)
        if query.text is not None and query.vector is None and query.mode != "keyword":
            embedder = await lane.run(_embedder_of, engine, name)
            if embedder is not None:  # else the engine says the collection takes vectors only
                vector = await asyncio.wrap_future(batcher_for(embedder).submit(query.text))
                query.vector = vector
                if query.mode == "vector":
                    query.text = None  # hybrid keeps it: BM25 scores its words
        found = await lane.run(_search, engine, name, query)
        _remember(engine, name, found[0])
    col, hits = found
    request.scope["vp.index"] = col.kind  # for the metrics, which need not look it up again
    metric = col.metric
    better = metric != "l2" or query.mode != "vector"  # BM25 and fused scores: higher
    return JSONBytes.of({"metric": metric, "higher_is_better": better, "hits": hits_json(hits)})


def _search_batch(engine: Engine, name: str, queries: list[Query]) -> tuple[Collection, Any]:
    faiss_threads_here(engine)
    col = engine.collection(name)
    return col, col.search_batch(queries)


@router.post("/collections/{name}/search/batch", response_model=BatchSearchResponse)
async def search_batch(name: str, req: BatchSearchRequest, request: Request) -> JSONBytes:
    """Several searches in one call; texts are embedded together. Results in request order."""
    engine, settings = get_engine(request), get_settings(request)
    req.check_limits(settings)
    queries = [s.to_query() for s in req.searches]
    col, results = await lane_for(name).run(_search_batch, engine, name, queries)
    request.scope["vp.index"] = col.kind
    return JSONBytes.of(
        {
            "metric": col.metric,
            "higher_is_better": col.metric != "l2",
            "results": [
                {"higher_is_better": col.metric != "l2" or q.mode != "vector", "hits": hits_json(r)}
                for q, r in zip(queries, results, strict=True)
            ],
        }
    )
