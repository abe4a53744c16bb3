"""Collections: create, list, describe, drop."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Response

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
    req: CreateCollectionRequest, engine: EngineDep, settings: SettingsDep, response: Response
) -> CollectionResponse:
    """A new empty collection (201). Without `dim` texts are embedded with `embedder` (default:
    the service's); with `dim` alone it stores the vectors you send. With `get_or_create` an
    existing collection of the same spec is returned (200)."""
    check_embedder(req.embedder, settings.embedder)
    existed = req.get_or_create and (engine.data_dir / req.name / "manifest.json").exists()
    chunking: Any = req.chunking  # a dict or a bool, as sent: the engine validates it
    col = engine.create_collection(
        req.name,
        req.metric,
        req.index,
        req.params,
        req.embedder,
        req.dim,
        req.get_or_create,
        keyword_index=req.keyword_index,
        chunking=chunking,
    )
    if existed:
        response.status_code = 200
    return CollectionResponse(**col.describe())


def check_embedder(requested: str | None, default: str) -> None:
    """Only the configured model (or a hash embedder) can be named: loading another model from
    a request would be slow, memory-hungry and a way to make the server read arbitrary paths."""
    if requested is not None and requested != default and not _HASH.match(requested):
        raise InvalidInput(
            f"embedder {requested!r} is not served here: use {default!r} (VP_EMBEDDER) or "
            "hash-<dim>",
            field="embedder",
        )


@router.get("/collections/{name}")
def get_collection(name: str, engine: EngineDep) -> CollectionResponse:
    """Metric, index, embedder, dimension and document count of one collection."""
    return CollectionResponse(**engine.collection(name).describe())


@router.delete("/collections/{name}")
def drop_collection(name: str, engine: EngineDep) -> DropCollectionResponse:
    """Delete a collection and all its documents, for good."""
    engine.drop_collection(name)
    return DropCollectionResponse(name=name)
