"""A sharded collection served by Ray Serve: one deployment per shard, pinned to its node.

    ingress (embeds the query once) --round--> shard0 deployment (resource shard0) --answer-->
                                    --round--> shard1 deployment (resource shard1) --answer-->
    ingress merges, fuses, diversifies and answers

A search is the plan of rounds of indexer/shards.py (`search_plan`: the shards' top lists, the
stored vectors MMR needs, the final hits), the same code the local `ShardedCollection` runs;
here each round is one call to every shard deployment, all in flight at once. So a search
through Serve ranks exactly like the local sharded search, in every mode.

Each shard deployment opens its shard folder on its own node (`<data_dir>/<name>/shard-<i>`,
where `index build --ray` wrote it from a writer pinned the same way) and asks
for a sliver of the custom resource `shard<i>`, which only the node started with
`--resources='{"shard<i>": 1}'` has. The ingress speaks the single-process service's read API
with its models (service/models.py) and `{error, detail, field}` errors: a collection's
description, search and batch search in every mode, a document by id (asked of its shard
only), the document list, writes (each document upserted or deleted by its shard; a batch
over several shards is all or nothing per shard, not across them) and analogy (each shard
scores its own vectors, indexer/shards.py `shard_analogy`, and the ingress merges).

Ray is an optional extra: this is the only module in `service` that imports it.
"""

import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI
from ray import serve

from indexer import Engine, Settings
from indexer import Query as EngineQuery
from indexer.analogy import AnalogyHit, AnalogyResult
from indexer.collection import Collection, DocumentIn, Hit
from indexer.embed import load_embedder
from indexer.errors import CollectionNotFound, DocumentNotFound, InvalidInput, VPError
from indexer.shards import (
    ANALOGY_OPS,
    SHARD_OPS,
    AnalogyAsk,
    Plan,
    check_queries,
    merge_analogy,
    merge_pages,
    read_shards_file,
    resolve,
    search_plan,
    shard_of,
)

from .errors import install_error_handlers
from .models import (
    AnalogyCollection,
    AnalogyExpression,
    AnalogyK,
    AnalogyRequest,
    AnalogyResponse,
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionResponse,
    DeleteRequest,
    DeleteResponse,
    DocumentListResponse,
    DocumentResponse,
    LiveResponse,
    PageCursor,
    PageLimit,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SearchResults,
    UpsertRequest,
    UpsertResponse,
    WithVectors,
    check_at_most,
)
from .routers import embeddings, similarity
from .routers import math as math_routes

app = FastAPI(title="vector-primer on Ray Serve")
install_error_handlers(app)
# what needs no collection is the single-process service's own routes: embeddings (OpenAI
# shape), similarity and primer_math's endpoints, on an engine of the ingress's (see Ingress)
for _module in (embeddings, similarity):
    app.include_router(_module.router, prefix="/v1")
app.include_router(math_routes.router)


def shard_upsert(col: Collection, arg: tuple[list[DocumentIn], bool]) -> dict[str, int]:
    """Upsert into one shard, all or nothing there; its counts and its size afterwards."""
    docs, skip_unchanged = arg
    return {**col.upsert(docs, skip_unchanged), "count": col.count()}


def shard_delete(col: Collection, arg: tuple[list[str] | None, dict[str, Any] | None]) -> Any:
    """Delete by ids and/or filter on one shard; the ids that were there and are gone."""
    ids, where = arg
    return col.delete(ids, where)


WRITE_OPS: dict[str, Any] = {"upsert": shard_upsert, "delete": shard_delete}
OPS: dict[str, Any] = {**SHARD_OPS, **ANALOGY_OPS, **WRITE_OPS}
_DOCUMENT = re.compile(r"^documents\[(\d+)\]")
_SHARD_NAME = re.compile(r"collection 'shard-\d+'")


def _error(e: dict[str, Any]) -> VPError:
    """A shard's VPError, rebuilt on the ingress with its status and code."""
    err = VPError(e["detail"], field=e["field"])
    err.status, err.code = e["status"], e["code"]
    return err


# defined before the deployments: Serve pickles them with the globals they see by then
def _in_request(e: dict[str, Any], at: list[int], name: str) -> dict[str, Any]:
    """A shard's error about its documents[j], renamed to the request's documents[at[j]] and
    naming the sharded collection, not the shard."""

    def rename(text: str | None) -> str | None:
        if text is None:
            return None
        text = _SHARD_NAME.sub(f"collection {name!r}", text)
        return _DOCUMENT.sub(lambda m: f"documents[{at[int(m.group(1))]}]", text)

    return {**e, "detail": rename(e["detail"]), "field": rename(e["field"])}


def _document_index(e: dict[str, Any]) -> int:
    m = _DOCUMENT.match(e["field"] or "")
    return int(m.group(1)) if m else -1


@serve.deployment
class ShardSearch:
    """One shard of the collection, read where it lives."""

    def __init__(self, data_dir: str, name: str, shard: str, embedder: str) -> None:
        import ray

        engine = Engine(Settings(data_dir=Path(data_dir) / name, embedder=embedder))
        self.col = engine.collection(shard)
        self.node = ray.get_runtime_context().get_node_id()

    def run(self, op: str, arg: Any) -> dict[str, Any]:
        """One round on this shard: `op` of `OPS` (indexer/shards.py SHARD_OPS and
        ANALOGY_OPS, the writes above). An engine error comes
        back as data (its status, code and field), so the ingress can raise it as it was."""
        try:
            return {"ok": OPS[op](self.col, arg), "node": self.node}
        except VPError as e:
            err = {"status": e.status, "code": e.code, "detail": e.detail, "field": e.field}
            return {"error": err, "node": self.node}

    def describe(self) -> dict[str, Any]:
        return {**self.col.describe(), "node": self.node}


@serve.deployment
@serve.ingress(app)
class Ingress:
    def __init__(
        self, shards: list[Any], data_dir: str, name: str, embedder: str, info: dict[str, Any]
    ) -> None:
        self.shards, self.name = shards, name
        self.info = info  # read by deploy: this node may hold no shard, nor shards.json
        self.settings = Settings(data_dir=Path(data_dir) / name, embedder=embedder)
        self.embedder = load_embedder(embedder)
        # the collection-free routes' engine: the ingress's model, a private data dir (this
        # node may hold no shard, and those routes store nothing)
        own = Settings(data_dir=Path(tempfile.mkdtemp(prefix="vp-ingress-")), embedder=embedder)
        app.state.engine, app.state.settings = Engine(own), own
        self.metric: str | None = None  # the shards', asked once
        self.answered: dict[str, int] = {}  # node id -> shard calls it answered

    def _check(self, name: str) -> None:
        if name != self.name:
            raise CollectionNotFound(f"no collection named {name!r}", field="name")

    async def _describe(self) -> list[dict[str, Any]]:
        return [await s.describe.remote() for s in self.shards]

    async def _call(
        self, op: str, args: list[Any], only: int | None = None, to: list[int] | None = None
    ) -> list[Any]:
        """One round: `op` with args[i] on shard i (or on shard `only` alone, or on the shards
        `to`), all calls in flight before the first answer is awaited."""
        answers = await self._answers(op, args, only, to)
        for a in answers:
            if "error" in a:
                raise _error(a["error"])
        return [a["ok"] for a in answers]

    async def _answers(
        self, op: str, args: list[Any], only: int | None = None, to: list[int] | None = None
    ) -> list[dict[str, Any]]:
        targets = to if to is not None else range(len(self.shards)) if only is None else [only]
        pending = [self.shards[i].run.remote(op, a) for i, a in zip(targets, args, strict=True)]
        answers: list[dict[str, Any]] = [await p for p in pending]
        for a in answers:
            self.answered[a["node"]] = self.answered.get(a["node"], 0) + 1
        return answers

    async def _run(self, plan: Plan) -> list[list[Hit]]:
        """indexer/shards.py `run_plan`, awaiting each round instead of blocking on it."""
        try:
            op, args = next(plan)
            while True:
                op, args = plan.send(await self._call(op, args))
        except StopIteration as done:
            result: list[list[Hit]] = done.value
            return result

    async def _search(self, queries: list[EngineQuery]) -> tuple[str, list[list[Hit]]]:
        """Validate, embed every text the vector side needs in one batch, rank over the shards."""
        check_queries(queries)
        if self.metric is None:
            self.metric = str((await self.shards[0].describe.remote())["metric"])
        need = [i for i, q in enumerate(queries) if q.mode != "keyword" and q.vector is None]
        vectors: list[Any] = [q.vector for q in queries]
        if need:
            embedded = self.embedder.embed([queries[i].text or "" for i in need])
            for i, v in zip(need, embedded, strict=True):
                vectors[i] = v
        resolved = [resolve(q, v) for q, v in zip(queries, vectors, strict=True)]
        return self.metric, await self._run(search_plan(resolved, len(self.shards), self.metric))

    @app.get("/livez")
    def livez(self) -> LiveResponse:
        return LiveResponse()

    @app.get("/v1/collections/{name}")
    async def get_collection(self, name: str) -> CollectionResponse:
        self._check(name)
        parts = await self._describe()
        return CollectionResponse(
            **{
                **{k: v for k, v in parts[0].items() if k != "node"},
                "name": name,
                "count": sum(p["count"] for p in parts),
                "seq": sum(p["seq"] for p in parts),
                "ann": {**parts[0]["ann"], "shards": len(parts)},
            }
        )

    @app.get("/v1/nodes")
    def nodes(self) -> dict[str, int]:
        """Which Ray nodes answered shard calls (for tests and operators)."""
        return self.answered

    @app.post("/v1/collections/{name}/search")
    async def search(self, name: str, req: SearchRequest) -> SearchResponse:
        """Nearest documents in any mode, ranked over every shard as one collection."""
        self._check(name)
        req.check_limits(self.settings)
        query = req.to_query()
        metric, (hits,) = await self._search([query])
        return SearchResponse.from_hits(metric, hits, query.mode)

    @app.post("/v1/collections/{name}/search/batch")
    async def search_batch(self, name: str, req: BatchSearchRequest) -> BatchSearchResponse:
        """Several searches, their texts embedded together, each shard asked once per round."""
        self._check(name)
        req.check_limits(self.settings)
        queries = [s.to_query() for s in req.searches]
        metric, results = await self._search(queries)
        return BatchSearchResponse(
            metric=metric,
            higher_is_better=metric != "l2",
            results=[
                SearchResults(
                    higher_is_better=metric != "l2" or q.mode != "vector",
                    hits=[SearchHit.from_hit(h) for h in r],
                )
                for q, r in zip(queries, results, strict=True)
            ],
        )

    @app.get("/v1/collections/{name}/documents")
    async def list_documents(
        self,
        name: str,
        limit: PageLimit = 100,
        cursor: PageCursor = None,
        with_vectors: WithVectors = False,
    ) -> DocumentListResponse:
        """One page of documents in id order, merged from every shard's page."""
        self._check(name)
        pages = await self._call("page", [(limit, cursor)] * len(self.shards))
        docs, next_cursor = merge_pages(pages, limit)
        return DocumentListResponse(
            documents=[DocumentResponse.from_doc(d, with_vectors) for d in docs],
            next_cursor=next_cursor,
        )

    @app.get("/v1/collections/{name}/documents/{doc_id:path}")
    async def get_document(
        self, name: str, doc_id: str, with_vectors: WithVectors = False
    ) -> DocumentResponse:
        """One document by id, asked of the one shard that holds it (`shard_of`)."""
        self._check(name)
        shard = shard_of(doc_id, len(self.shards))
        (doc,) = await self._call("get", [(doc_id, name)], only=shard)
        return DocumentResponse.from_doc(doc, with_vectors)

    # ---- writes: each document goes to its shard -------------------------------------------
    @app.put("/v1/collections/{name}/documents")
    async def upsert_documents(self, name: str, req: UpsertRequest) -> UpsertResponse:
        """Insert or replace documents by id, each upserted by its shard (`shard_of`), which
        embeds its texts. All or nothing per shard, not across shards: when one shard refuses
        its part of a batch, the parts other shards accepted stay written (as in Qdrant, a
        write to several shards is not atomic). The error names the request's own index."""
        self._check(name)
        req.check_limits(self.settings)
        n = len(self.shards)
        at: list[list[int]] = [[] for _ in range(n)]  # shard -> the request's indices
        for i, d in enumerate(req.documents):
            at[shard_of(d.id, n)].append(i)
        to = [s for s in range(n) if at[s]]
        args = [([req.documents[i].to_engine() for i in at[s]], req.skip_unchanged) for s in to]
        answers = await self._answers("upsert", args, to=to)
        refused = [(s, a["error"]) for s, a in zip(to, answers, strict=True) if "error" in a]
        if refused:  # the refusal of the earliest document, as one collection reports it
            errs = [_in_request(e, at[s], name) for s, e in refused]
            raise _error(min(errs, key=lambda e: _document_index(e)))
        counts = [a["ok"] for a in answers]
        if len(to) < n:  # the size of the shards that were not written
            rest = [s for s in range(n) if s not in to]
            parts = await self._describe()
            counts += [{"upserted": 0, "skipped": 0, "count": parts[s]["count"]} for s in rest]
        return UpsertResponse(
            collection=name,
            upserted=sum(c["upserted"] for c in counts),
            skipped=sum(c["skipped"] for c in counts),
            count=sum(c["count"] for c in counts),
        )

    @app.post("/v1/collections/{name}/documents/delete")
    async def delete_documents(self, name: str, req: DeleteRequest) -> DeleteResponse:
        """Delete by ids (each asked of its shard) and/or a filter (asked of every shard)."""
        self._check(name)
        req.check_limits(self.settings)
        if req.ids is None and req.filter is None:
            raise InvalidInput("give ids or a filter", field="ids")
        n = len(self.shards)
        mine: list[list[str]] = [[] for _ in range(n)]
        for doc_id in req.ids or []:
            mine[shard_of(doc_id, n)].append(doc_id)
        to = [s for s in range(n) if mine[s] or req.filter is not None]
        parts = await self._call("delete", [(mine[s], req.filter) for s in to], to=to)
        deleted = sorted({d for part in parts for d in part})
        return DeleteResponse(deleted=deleted, count=len(deleted))

    @app.delete("/v1/collections/{name}/documents/{doc_id:path}")
    async def delete_document(self, name: str, doc_id: str) -> DeleteResponse:
        """Delete one document on its shard; 404 if it is not there."""
        self._check(name)
        shard = shard_of(doc_id, len(self.shards))
        await self._call("get", [(doc_id, name)], only=shard)  # 404 before any write
        (deleted,) = await self._call("delete", [([doc_id], None)], only=shard)
        if not deleted:
            raise DocumentNotFound(f"no document {doc_id!r} in collection {name!r}", field="id")
        return DeleteResponse(deleted=deleted, count=1)

    # ---- analogy: each shard scores its own vectors -----------------------------------------
    @app.post("/v1/analogy")
    async def analogy_post(self, req: AnalogyRequest) -> AnalogyResponse:
        """indexer/analogy.py over the shards: each term resolved on its shard (a document id)
        or embedded here, each shard's top k by the analogy score, merged here."""
        return await self._analogy(req)

    @app.get("/v1/analogy")
    async def analogy_get(
        self,
        q: AnalogyExpression,
        collection: AnalogyCollection = "words",
        k: AnalogyK = 5,
        method: Literal["3cosadd", "3cosmul"] = "3cosadd",
        exclude_inputs: bool = True,
    ) -> AnalogyResponse:
        req = AnalogyRequest.from_expression(q, collection, k, method, exclude_inputs)
        return await self._analogy(req)

    async def _analogy(self, req: AnalogyRequest) -> AnalogyResponse:
        check_at_most(req.k, self.settings.max_k, "k", "VP_MAX_K")
        self._check(req.collection)
        if not 1 <= req.k <= 1000:  # indexer/analogy.py's own bound, under VP_MAX_K's
            raise InvalidInput("k must be in [1, 1000]", field="k")
        terms = req.positive + req.negative
        for name, group in (("positive", req.positive), ("negative", req.negative)):
            for i, t in enumerate(group):
                if not t.strip():
                    raise InvalidInput(
                        f"{name}[{i}] must be a non-empty string", field=f"{name}[{i}]"
                    )
        resolved = [(t, *await self._term(t)) for t in terms]
        P = np.stack([v for _, v, _, _ in resolved[: len(req.positive)]])
        N = np.stack([v for _, v, _, _ in resolved[len(req.positive) :]]) if req.negative else None
        excluded = None
        if req.exclude_inputs:
            excluded = {t.lower() for t, *_ in resolved} | {d for *_, d in resolved if d}
        ask = AnalogyAsk(P, N, req.method, req.k, excluded)
        parts = await self._call("analogy", [ask] * len(self.shards))
        hits = [
            AnalogyHit(
                c.doc.id,
                c.score,
                c.doc.text,
                c.doc.metadata,
                dict(zip(terms, c.cosines, strict=True)),
            )
            for c in merge_analogy(parts, req.k)
        ]
        sources = [{"term": t, "source": src, "document": doc} for t, _, src, doc in resolved]
        result = AnalogyResult(req.method, hits, sources)
        return AnalogyResponse.from_result(req.collection, req.positive, req.negative, result)

    async def _term(self, term: str) -> tuple[Any, str, str | None]:
        """A term's unit vector: the document with that id (or its lower case) on its shard,
        else the term embedded here (as Collection.term_vector does)."""
        for key in (term, term.lower()):
            (found,) = await self._call("term", [key], only=shard_of(key, len(self.shards)))
            if found is not None:
                return tuple(found)
        v = self.embedder.embed([term])[0]
        norm = float(np.linalg.norm(v))
        if norm == 0 or not np.isfinite(norm):
            raise InvalidInput("term vector has zero length", field="terms")
        return (v / norm).astype(np.float32), "embedded", None


def deploy(data_dir: str, name: str, embedder: str, host: str, port: int) -> None:
    """Start Serve's HTTP proxy on host:port and run one deployment per shard of `name`,
    each pinned to the node that has the custom resource `shard<i>`."""
    info = read_shards_file(Path(data_dir) / name)
    shards = [
        ShardSearch.options(  # type: ignore[attr-defined]
            name=f"{name}-shard{i}",
            ray_actor_options={"num_cpus": 0, "resources": {f"shard{i}": 0.01}},
        ).bind(data_dir, name, shard, embedder)
        for i, shard in enumerate(info["shards"])
    ]
    serve.start(http_options={"host": host, "port": port, "location": "HeadOnly"})
    ingress = Ingress.options(ray_actor_options={"num_cpus": 0})  # type: ignore[attr-defined]
    serve.run(ingress.bind(shards, data_dir, name, embedder, info), name=name, route_prefix="/")
