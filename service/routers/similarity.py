"""How alike are these texts? Cosine, L2 distance, dot product and angle, every pair."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import EngineDep
from service.geometry import pairwise
from service.models import PairSimilarity, SimilarityRequest, SimilarityResponse

router = APIRouter(tags=["similarity"])


@router.post("/similarity")
def similarity(req: SimilarityRequest, engine: EngineDep) -> SimilarityResponse:
    """Embed the texts with the service's embedder and compare every pair four ways; for two
    texts `pair` holds the four numbers."""
    embedder = engine.embedder()
    m = {name: matrix.tolist() for name, matrix in pairwise(embedder.embed(req.texts)).items()}
    pair = (
        PairSimilarity(**{name: rows[0][1] for name, rows in m.items()})
        if len(req.texts) == 2
        else None
    )
    return SimilarityResponse(
        embedder=embedder.name, dim=embedder.dim, texts=req.texts, pair=pair, **m
    )
