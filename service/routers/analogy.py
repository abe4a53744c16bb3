"""Word analogies: king − man + woman ≈ queen, with each hit's cosine to every input term."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from indexer import Engine, Settings, analogy
from service.deps import EngineDep, SettingsDep
from service.models import (
    AnalogyCollection,
    AnalogyExpression,
    AnalogyK,
    AnalogyRequest,
    AnalogyResponse,
    check_at_most,
)

router = APIRouter(tags=["analogy"])


def _analogy(engine: Engine, settings: Settings, req: AnalogyRequest) -> AnalogyResponse:
    check_at_most(req.k, settings.max_k, "k", "VP_MAX_K")
    col = engine.collection(req.collection)
    result = analogy(col, req.positive, req.negative, req.k, req.method, req.exclude_inputs)
    return AnalogyResponse.from_result(req.collection, req.positive, req.negative, result)


@router.post("/analogy")
def analogy_post(req: AnalogyRequest, engine: EngineDep, settings: SettingsDep) -> AnalogyResponse:
    """positive [king, woman], negative [man] → queen first. 3CosAdd ranks by
    Σ cos(x, positive) − Σ cos(x, negative); 3CosMul by their product and quotient."""
    return _analogy(engine, settings, req)


@router.get("/analogy")
def analogy_get(
    q: AnalogyExpression,
    engine: EngineDep,
    settings: SettingsDep,
    collection: AnalogyCollection = "words",
    k: AnalogyK = 5,
    method: Literal["3cosadd", "3cosmul"] = "3cosadd",
    exclude_inputs: bool = True,
) -> AnalogyResponse:
    """The same, written as arithmetic for a browser or curl: `?q=king-man%2Bwoman`."""
    req = AnalogyRequest.from_expression(q, collection, k, method, exclude_inputs)
    return _analogy(engine, settings, req)
