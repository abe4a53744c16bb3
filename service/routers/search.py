"""Nearest-neighbour search in one collection, one query or a batch."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import EngineDep, SettingsDep
from service.models import (
    BatchSearchRequest,
    BatchSearchResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SearchResults,
)

router = APIRouter(tags=["search"])


@router.post("/collections/{name}/search")
def search(
    name: str, req: SearchRequest, engine: EngineDep, settings: SettingsDep
) -> SearchResponse:
    """Nearest documents to a text or a vector, best first, scored by the collection's metric
    (cosine and dot: higher is better; l2: a distance, lower is better)."""
    req.check_limits(settings)
    col = engine.collection(name)
    return SearchResponse.from_hits(col.metric, col.search(req.to_query()))


@router.post("/collections/{name}/search/batch")
def search_batch(
    name: str, req: BatchSearchRequest, engine: EngineDep, settings: SettingsDep
) -> BatchSearchResponse:
    """Several searches in one call; texts are embedded together. Results in request order."""
    req.check_limits(settings)
    col = engine.collection(name)
    results = col.search_batch([s.to_query() for s in req.searches])
    return BatchSearchResponse(
        metric=col.metric,
        higher_is_better=col.metric != "l2",
        results=[SearchResults(hits=[SearchHit.from_hit(h) for h in r]) for r in results],
    )
