"""Collections: create, list, describe, drop."""

from __future__ import annotations

import re

from fastapi import APIRouter

from indexer.errors import InvalidInput
from service.deps import EngineDep, SettingsDep
from service.models import (
    CollectionListResponse,
    CollectionResponse,
    CreateCollectionRequest,
    DropCollectionResponse,
)

router = APIRouter(tags=["collections"])
_HASH = re.compile(r"^hash-\d{1,5}$")


@router.get("/collections")
def list_collections(engine: EngineDep) -> CollectionListResponse:
    """Every collection in the data directory, including ones a batch job just built."""
    found = engine.list_collections()
    return CollectionListResponse(collections=[CollectionResponse(**c) for c in found])


@router.post("/collections", status_code=201)
def create_collection(
    req: CreateCollectionRequest, engine: EngineDep, settings: SettingsDep
) -> CollectionResponse:
    """A new empty collection. Without `dim` texts are embedded with `embedder` (default: the
    service's); with `dim` alone it stores the vectors you send."""
    if (
        req.embedder is not None
        and req.embedder != settings.embedder
        and not _HASH.match(req.embedder)
    ):
        raise InvalidInput(
            f"embedder {req.embedder!r} is not served here: use "
            f"{settings.embedder!r} (VP_EMBEDDER) or hash-<dim>",
            field="embedder",
        )
    col = engine.create_collection(
        req.name, req.metric, req.index, req.params, req.embedder, req.dim
    )
    return CollectionResponse(**col.describe())


@router.get("/collections/{name}")
def get_collection(name: str, engine: EngineDep) -> CollectionResponse:
    """Metric, index, embedder, dimension and document count of one collection."""
    return CollectionResponse(**engine.collection(name).describe())


@router.delete("/collections/{name}")
def drop_collection(name: str, engine: EngineDep) -> DropCollectionResponse:
    """Delete a collection and all its documents, for good."""
    engine.drop_collection(name)
    return DropCollectionResponse(name=name)
