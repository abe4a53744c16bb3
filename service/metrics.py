"""`GET /metrics` in Prometheus text format (prometheus-client), one registry per app.

What is measured, and where (all in the service layer; the engine's files are not touched):

- `vp_http_requests_total` and `vp_http_request_duration_seconds{method, route, status}`: every
  request, by route template (`/v1/collections/{name}/search`), from `RequestLogMiddleware`.
- `vp_errors_total{error, status}`: error responses by the API's error code.
- `vp_search_duration_seconds{collection, index, endpoint}`: searches answered 200, query
  embedding + FAISS + JSON, by collection and index kind.
- `vp_embed_batch_size{embedder}` and `vp_embed_duration_seconds{embedder}`: every embedder
  call (documents, queries, the `words` build), through `MeteredEngine`, whose embedders time
  each batch.
- `vp_collection_documents{collection, index, metric}` and `vp_ready`: read when scraped.
- process and Python GC metrics (`process_*`, `python_*`), with one worker only.

With `serve --workers N` every counter and histogram is the sum over the workers
(prometheus-client's multiprocess mode, PROMETHEUS_MULTIPROC_DIR set by the CLI).

When `VP_API_KEY` is set, `/metrics` needs the key like every other data path (as in Qdrant):
collection names and sizes are not for everyone. Prometheus sends it with
`authorization: {credentials: <key>}` in its scrape config.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.types import Scope

from indexer import Engine, Settings
from indexer.embed import Embedder, Vectors


def multiprocess_dir() -> str | None:
    """Set by `serve --workers N` (service/cli.py) before the workers start."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def worker_exits() -> None:
    """A worker leaving: its in-progress gauge stops counting in the others' sums."""
    if multiprocess_dir():
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def worker_started() -> None:
    """A worker whose start-up completed leaves a mark for `serve --workers N`'s supervisor
    (service/workers.py): it replaces only workers that had started, and exits with an error
    when none did. A worker that dies without leaving (kill -9, a crash) is taken out of the
    live gauges' sums by the supervisor."""
    folder = multiprocess_dir()
    if folder:
        (Path(folder) / f"started-{os.getpid()}").touch()


# no `_created` twin of every series: noise for Prometheus users
disable_created_metrics()  # type: ignore[no-untyped-call]

SEARCH_ROUTES = {
    "/v1/collections/{name}/search": "search",
    "/v1/collections/{name}/search/batch": "search_batch",
}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

router = APIRouter()


class Metrics:
    """The instruments of one app, in their own registry (tests build many apps per process)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        if multiprocess_dir():
            # `serve --workers N`: each worker's instruments write to files in the directory and
            # /metrics sums all workers' files; the instruments' own registry is not scraped.
            # Process and GC metrics are per process and are left out (prometheus-client's
            # multiprocess mode cannot combine them).
            MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
            r = CollectorRegistry()
        else:
            for default in (ProcessCollector, PlatformCollector, GCCollector):
                default(registry=r)
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "vp_http_requests",
            "HTTP requests by method, route template and status",
            labels,
            registry=r,
        )
        self.latency = Histogram(
            "vp_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "vp_http_requests_in_progress",
            "HTTP requests being served",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(
            "vp_errors",
            "error responses by the API's error code and status",
            ["error", "status"],
            registry=r,
        )
        self.search = Histogram(
            "vp_search_duration_seconds",
            "searches answered 200 (query embedding + FAISS + JSON) by collection and index kind",
            ["collection", "index", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.embed_batch = Histogram(
            "vp_embed_batch_size",
            "texts per embedder call",
            ["embedder"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.embed_seconds = Histogram(
            "vp_embed_duration_seconds",
            "time per embedder call",
            ["embedder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def watch(self, app: FastAPI) -> None:
        """Read the app's collections and readiness when scraped."""
        self.registry.register(StateCollector(app))

    def observe_request(
        self,
        scope: Scope,
        route: str,
        params: dict[str, Any],
        status: int,
        seconds: float,
        error: str,
    ) -> None:
        method = str(scope.get("method", ""))
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route, str(status)).observe(seconds)
        if error:
            self.errors.labels(error, str(status)).inc()
        endpoint = SEARCH_ROUTES.get(route)
        if endpoint is not None and status == 200:
            name = str(params.get("name", ""))
            kind = scope.get("vp.index") or _index_kind(scope.get("app"), name)
            self.search.labels(name, kind, endpoint).observe(seconds)

    def observe_embedding(self, embedder: str, n: int, seconds: float) -> None:
        self.embed_batch.labels(embedder).observe(n)
        self.embed_seconds.labels(embedder).observe(seconds)


def _index_kind(app: Any, name: str) -> str:
    engine = getattr(getattr(app, "state", None), "engine", None)
    if engine is None:
        return "unknown"
    try:
        return str(engine.collection(name).kind)
    except Exception:  # dropped in between: the search itself succeeded
        return "unknown"


class StateCollector(Collector):
    """Documents per collection and readiness, read from the engine at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # computed per scrape: nothing to check for duplicates up front

    def collect(self) -> Iterator[Metric]:
        state = self.app.state
        warmup = getattr(state, "warmup", None)
        ready = GaugeMetricFamily("vp_ready", "1 when /readyz answers 200")
        ok = warmup is not None and warmup.failed is None and warmup.ready.is_set()
        ready.add_metric([], 1.0 if ok else 0.0)
        yield ready
        docs = GaugeMetricFamily(
            "vp_collection_documents",
            "documents in each collection",
            labels=["collection", "index", "metric"],
        )
        engine: Engine | None = getattr(state, "engine", None)
        if engine is not None:
            with contextlib.suppress(OSError):  # the data dir went away: report nothing
                for c in engine.list_collections():
                    docs.add_metric([c["name"], c["index"], c["metric"]], float(c["count"]))
        yield docs


# ---- embedders that time themselves -------------------------------------------------------
class MeteredEmbedder:
    """An embedder that reports each call's batch size and duration; everything else is the
    wrapped embedder's."""

    def __init__(self, inner: Embedder, metrics: Metrics) -> None:
        self.inner, self.metrics = inner, metrics
        self.name, self.dim = inner.name, inner.dim

    def embed(self, texts: list[str]) -> Vectors:
        start = time.perf_counter()
        out = self.inner.embed(texts)
        self.metrics.observe_embedding(self.name, len(texts), time.perf_counter() - start)
        return out

    def token_embeddings(self, text: str) -> tuple[list[str], Vectors]:
        return self.inner.token_embeddings(text)

    def vocabulary(self) -> list[str]:
        return self.inner.vocabulary()

    def __getattr__(self, attr: str) -> Any:  # count_tokens and the like, when present
        return getattr(self.inner, attr)


class MeteredEngine(Engine):
    """The engine, handing out metered embedders. Collections take their embedder from
    `Engine.embedder`, so documents, queries and the words build are all measured."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        super().__init__(settings)
        self.metrics = metrics
        self._metered: dict[int, MeteredEmbedder] = {}

    def embedder(self, name: str | None = None) -> Embedder:
        inner = super().embedder(name)
        metered = self._metered.get(id(inner))
        if metered is None or metered.inner is not inner:
            metered = self._metered[id(inner)] = MeteredEmbedder(inner, self.metrics)
        return metered


# ---- the endpoint -------------------------------------------------------------------------
@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format. Not in the OpenAPI schema: it is for scrapers, not clients."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> Metrics:
    """Create the app's metrics and serve them at `/metrics`."""
    app.state.metrics = m = Metrics()
    m.watch(app)
    app.include_router(router)
    return m
