"""Nearest-neighbour search in one collection, one query or a batch.

The hot path makes one hop to a worker thread, not four: FastAPI runs sync dependencies, a sync
endpoint and the re-validation of its response model each in the thread pool, and on two busy
cores every hop waits for the scheduler. So the dependencies here are async (they only read
app.state), the engine call runs in the collection's search lane (one thread, service/
batching.py), a text query's embedding shares a forward pass with concurrent ones while no
thread waits for it, and the hits are written straight to JSON bytes; the models still
document the routes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from indexer import Engine, Hit, Query, Settings
from indexer.index import set_threads
from service.batching import batcher_for, lane_for
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


def _in_worker(engine: Engine) -> None:
    """FAISS's OpenMP thread count is per calling thread, and the engine sets it only on the
    thread that made it: in a pool thread a search would use every core and leave OpenMP
    threads spinning after it (measured: 11.8 -> 4.5 ms of server CPU per query at 1 conn)."""
    set_threads(engine.settings.faiss_threads)


def _search(engine: Engine, name: str, query: Query) -> tuple[str, list[Hit]]:
    _in_worker(engine)
    col = engine.collection(name)
    return col.metric, col.search(query)


def _embedder_of(engine: Engine, name: str) -> Any:
    return engine.collection(name).embedder


@router.post("/collections/{name}/search", response_model=SearchResponse)
async def search(
    name: str, req: SearchRequest, engine: EngineDep, settings: SettingsDep
) -> JSONBytes:
    """Nearest documents to a text or a vector, best first, scored by the collection's metric
    (cosine and dot: higher is better; l2: a distance, lower is better)."""
    req.check_limits(settings)
    query, lane = req.to_query(), lane_for(name)
    if query.text is not None and query.vector is None and query.mode != "keyword":
        embedder = await lane.run(_embedder_of, engine, name)
        if embedder is not None:  # else the engine says the collection takes vectors only
            vector = await asyncio.wrap_future(batcher_for(embedder).submit(query.text))
            query.vector = vector
            if query.mode == "vector":
                query.text = None  # hybrid keeps it: BM25 scores its words
    metric, hits = await lane.run(_search, engine, name, query)
    return JSONBytes.of(
        {"metric": metric, "higher_is_better": metric != "l2", "hits": hits_json(hits)}
    )


def _search_batch(engine: Engine, name: str, queries: list[Query]) -> tuple[str, Any]:
    _in_worker(engine)
    col = engine.collection(name)
    return col.metric, col.search_batch(queries)


@router.post("/collections/{name}/search/batch", response_model=BatchSearchResponse)
async def search_batch(
    name: str, req: BatchSearchRequest, engine: EngineDep, settings: SettingsDep
) -> JSONBytes:
    """Several searches in one call; texts are embedded together. Results in request order."""
    req.check_limits(settings)
    queries = [s.to_query() for s in req.searches]
    metric, results = await lane_for(name).run(_search_batch, engine, name, queries)
    return JSONBytes.of(
        {
            "metric": metric,
            "higher_is_better": metric != "l2",
            "results": [{"hits": hits_json(r)} for r in results],
        }
    )
