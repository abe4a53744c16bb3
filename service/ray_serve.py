"""A sharded collection served by Ray Serve: one deployment per shard, pinned to its node.

    ingress (embeds the query once) --vector--> shard0 deployment (resource shard0) --top-k-->
                                    --vector--> shard1 deployment (resource shard1) --top-k-->
    ingress merges the per-shard top-k (indexer/shards.py `merge_top_k`) and answers.

Each shard deployment opens its shard folder on its own node (`<data_dir>/<name>/shard-<i>`,
so the data dir must be on every node at the same path, or on a shared file system) and asks
for a sliver of the custom resource `shard<i>`, which only the node started with
`--resources='{"shard<i>": 1}'` has. The ingress speaks the same HTTP API and models as the
single-process service (service/models.py) and the same `{error, detail, field}` errors.

Ray is an optional extra: this is the only module in `service` that imports it.
"""

from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from ray import serve

from indexer import Engine, Query, Settings
from indexer.collection import Hit
from indexer.embed import load_embedder
from indexer.errors import CollectionNotFound, InvalidInput, VPError
from indexer.index import higher_is_better
from indexer.shards import merge_top_k, read_shards_file

from .errors import install_error_handlers
from .models import CollectionResponse, LiveResponse, SearchRequest, SearchResponse

app = FastAPI(title="vector-primer on Ray Serve")
install_error_handlers(app)


def _error(e: dict[str, Any]) -> VPError:
    """A shard's VPError, rebuilt on the ingress with its status and code."""
    err = VPError(e["detail"], field=e["field"])
    err.status, err.code = e["status"], e["code"]
    return err


@serve.deployment
class ShardSearch:
    """One shard of the collection, searched where it lives."""

    def __init__(self, data_dir: str, name: str, shard: str, embedder: str) -> None:
        import ray

        engine = Engine(Settings(data_dir=Path(data_dir) / name, embedder=embedder))
        self.col = engine.collection(shard)
        self.node = ray.get_runtime_context().get_node_id()

    def search(self, queries: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            results = self.col.search_batch([Query(**q) for q in queries])
        except VPError as e:
            err = {"status": e.status, "code": e.code, "detail": e.detail, "field": e.field}
            return {"error": err, "node": self.node}
        hits = [[h.__dict__ for h in hs] for hs in results]
        return {"hits": hits, "node": self.node}

    def describe(self) -> dict[str, Any]:
        return {**self.col.describe(), "node": self.node}


@serve.deployment
@serve.ingress(app)
class Ingress:
    def __init__(self, shards: list[Any], data_dir: str, name: str, embedder: str) -> None:
        self.shards, self.name = shards, name
        self.info = read_shards_file(Path(data_dir) / name)
        self.embedder = load_embedder(embedder)
        self.answered: dict[str, int] = {}  # node id -> shard calls it answered

    def _check(self, name: str) -> None:
        if name != self.name:
            raise CollectionNotFound(f"no collection named {name!r}", field="name")

    async def _describe(self) -> list[dict[str, Any]]:
        return [await s.describe.remote() for s in self.shards]

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
        """Which Ray nodes answered shard searches (for tests and operators)."""
        return self.answered

    @app.post("/v1/collections/{name}/search")
    async def search(self, name: str, req: SearchRequest) -> SearchResponse:
        self._check(name)
        q = req.to_query()
        if (q.text is None) == (q.vector is None):
            raise InvalidInput("give exactly one of query (text) or vector", field="query")
        vector = q.vector if q.vector is not None else self.embedder.embed([q.text or ""])[0]
        query = {**q.__dict__, "text": None, "vector": np.asarray(vector, np.float32).tolist()}
        answers = [await s.search.remote([query]) for s in self.shards]
        for a in answers:
            self.answered[a["node"]] = self.answered.get(a["node"], 0) + 1
            if "error" in a:
                raise _error(a["error"])
        lists = [[Hit(**h) for h in a["hits"][0]] for a in answers]
        metric = (await self.shards[0].describe.remote())["metric"]
        scores = [np.array([h.score for h in hs], dtype=np.float64) for hs in lists]
        merged = merge_top_k(scores, q.k, higher_is_better(metric))
        return SearchResponse.from_hits(metric, [lists[s][r] for s, r in merged])


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
    serve.run(ingress.bind(shards, data_dir, name, embedder), name=name, route_prefix="/")
