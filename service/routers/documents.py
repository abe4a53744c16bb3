"""Documents of one collection: upsert, get, list, delete one, delete by ids or filter."""

from __future__ import annotations

from fastapi import APIRouter

from indexer.errors import DocumentNotFound
from service.deps import EngineDep, SettingsDep
from service.models import (
    DeleteRequest,
    DeleteResponse,
    DocumentListResponse,
    DocumentResponse,
    FastJSONRoute,
    PageCursor,
    PageLimit,
    UpsertRequest,
    UpsertResponse,
    WithVectors,
)
from service.routers.search import faiss_threads_here

# pydantic-core parses the bodies: a 1,000-vector upsert spent 38% of the server's time in
# `json.loads` on the event loop (profiled), the parse that FastJSONRoute makes ~7x faster
router = APIRouter(tags=["documents"], route_class=FastJSONRoute)


@router.put("/collections/{name}/documents")
def upsert_documents(
    name: str, req: UpsertRequest, engine: EngineDep, settings: SettingsDep
) -> UpsertResponse:
    """Insert or replace documents by id, all or nothing. A text without a vector is embedded
    here; the write is durable before the response is sent."""
    req.check_limits(settings)
    faiss_threads_here(engine)  # FAISS's threads in this pool thread: the configured count, not all
    col = engine.collection(name)
    counts = col.upsert([d.to_engine() for d in req.documents], req.skip_unchanged)
    return UpsertResponse(collection=name, count=col.count(), **counts)


@router.get("/collections/{name}/documents")
def list_documents(
    name: str,
    engine: EngineDep,
    limit: PageLimit = 100,
    cursor: PageCursor = None,
    with_vectors: WithVectors = False,
) -> DocumentListResponse:
    """One page of documents in id order; follow `next_cursor` until it is null."""
    docs, next_cursor = engine.collection(name).page(limit, cursor)
    return DocumentListResponse(
        documents=[DocumentResponse.from_doc(d, with_vectors) for d in docs],
        next_cursor=next_cursor,
    )


@router.post("/collections/{name}/documents/delete")
def delete_documents(
    name: str, req: DeleteRequest, engine: EngineDep, settings: SettingsDep
) -> DeleteResponse:
    """Delete by ids and/or a metadata filter; returns the ids that were there and are gone."""
    req.check_limits(settings)
    faiss_threads_here(engine)
    deleted = engine.collection(name).delete(req.ids, req.filter)
    return DeleteResponse(deleted=deleted, count=len(deleted))


@router.get("/collections/{name}/documents/{doc_id:path}")
def get_document(
    name: str, doc_id: str, engine: EngineDep, with_vectors: WithVectors = False
) -> DocumentResponse:
    """One document by id, with its stored vector if asked."""
    return DocumentResponse.from_doc(engine.collection(name).get(doc_id), with_vectors)


@router.delete("/collections/{name}/documents/{doc_id:path}")
def delete_document(name: str, doc_id: str, engine: EngineDep) -> DeleteResponse:
    """Delete one document; 404 if it is not there."""
    faiss_threads_here(engine)
    col = engine.collection(name)
    col.get(doc_id)  # 404 before any write: a refused request changes nothing, not even seq
    deleted = col.delete([doc_id])
    if not deleted:  # deleted by someone else in between
        raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}", field="id")
    return DeleteResponse(deleted=deleted, count=1)
