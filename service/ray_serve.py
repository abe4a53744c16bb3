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
only) and the document list. Not served here: writes (a sharded collection is written by
`index build --ray`) and analogy (it scans every vector of the collection).

Ray is an optional extra: this is the only module in `service` that imports it.
"""

from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query
from ray import serve

from indexer import Engine, Settings
from indexer import Query as EngineQuery
from indexer.collection import Hit
from indexer.embed import load_embedder
from indexer.errors import CollectionNotFound, VPError
from indexer.shards import (
    SHARD_OPS,
    Plan,
    check_queries,
    merge_pages,
    read_shards_file,
    resolve,
    search_plan,
    shard_of,
)

from .errors import install_error_handlers
from .models import (
    BatchSearchRequest,
    BatchSearchResponse,
    CollectionResponse,
    DocumentListResponse,
    DocumentResponse,
    LiveResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    SearchResults,
)

app = FastAPI(title="vector-primer on Ray Serve")
install_error_handlers(app)
WithVectors = Annotated[bool, Query(description="include each document's stored vector")]


def _error(e: dict[str, Any]) -> VPError:
    """A shard's VPError, rebuilt on the ingress with its status and code."""
    err = VPError(e["detail"], field=e["field"])
    err.status, err.code = e["status"], e["code"]
    return err


@serve.deployment
class ShardSearch:
    """One shard of the collection, read where it lives."""

    def __init__(self, data_dir: str, name: str, shard: str, embedder: str) -> None:
        import ray

        engine = Engine(Settings(data_dir=Path(data_dir) / name, embedder=embedder))
        self.col = engine.collection(shard)
        self.node = ray.get_runtime_context().get_node_id()

    def run(self, op: str, arg: Any) -> dict[str, Any]:
        """One round on this shard: `op` of indexer/shards.py SHARD_OPS. An engine error comes
        back as data (its status, code and field), so the ingress can raise it as it was."""
        try:
            return {"ok": SHARD_OPS[op](self.col, arg), "node": self.node}
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
        self.metric: str | None = None  # the shards', asked once
        self.answered: dict[str, int] = {}  # node id -> shard calls it answered

    def _check(self, name: str) -> None:
        if name != self.name:
            raise CollectionNotFound(f"no collection named {name!r}", field="name")

    async def _describe(self) -> list[dict[str, Any]]:
        return [await s.describe.remote() for s in self.shards]

    async def _call(self, op: str, args: list[Any], only: int | None = None) -> list[Any]:
        """One round: `op` with args[i] on shard i (or on shard `only` alone), all calls in
        flight before the first answer is awaited."""
        targets = range(len(self.shards)) if only is None else [only]
        pending = [self.shards[i].run.remote(op, a) for i, a in zip(targets, args, strict=True)]
        answers = [await p for p in pending]
        for a in answers:
            self.answered[a["node"]] = self.answered.get(a["node"], 0) + 1
        for a in answers:
            if "error" in a:
                raise _error(a["error"])
        return [a["ok"] for a in answers]

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
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[
            str | None, Query(max_length=512, description="next_cursor of the previous page")
        ] = None,
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
