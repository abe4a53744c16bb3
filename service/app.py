"""The app factory. Importing this module is cheap: the engine is created by the lifespan."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from indexer import Settings
from indexer.settings import load_settings
from service.errors import install_error_handlers
from service.logs import RequestLogMiddleware, configure_logging
from service.metrics import MeteredEngine, install_metrics, worker_exits, worker_started
from service.middleware import install_middleware
from service.models import ErrorResponse
from service.routers import (
    analogy,
    collections,
    documents,
    embeddings,
    health,
    search,
    similarity,
    snapshots,
)
from service.routers.ui import install_page
from service.warmup import Warmup

DESCRIPTION = """A vector search service that shows its math: collections of documents embedded
with all-MiniLM-L6-v2 (or your vectors), searched by cosine, L2 or dot product over FAISS;
word analogies; pairwise similarity; OpenAI-compatible embeddings.

Errors are JSON `{error, detail, field}`."""
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 404, 409, 413, 422, 500, 503)
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """A FastAPI app over one engine on `settings.data_dir`; nothing heavy until start-up."""
    settings = settings if settings is not None else load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format)
        engine = MeteredEngine(settings, app.state.metrics)  # times every embedder call
        warmup = Warmup(engine, settings)
        app.state.engine, app.state.warmup = engine, warmup
        warmup.start()
        worker_started()
        try:
            yield
        finally:
            warmup.close()
            engine.close()
            worker_exits()

    app = FastAPIOffline(
        title="vector-primer", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (collections, documents, search, analogy, similarity, embeddings):
        app.include_router(module.router, prefix="/v1", responses=ERRORS)
    app.include_router(snapshots.router, prefix="/v1", responses={**ERRORS, 507: ERRORS[503]})
    if importlib.util.find_spec("service.routers.math") is not None:  # primer_math's routes
        app.include_router(importlib.import_module("service.routers.math").router)
    # keys, body limits, concurrency limit, CORS (service/middleware.py has the order)
    install_middleware(app, settings)
    # Outside the key check: the page (public, like /docs), then logs and metrics of everything.
    metrics = install_metrics(app)
    install_page(app)
    app.add_middleware(RequestLogMiddleware, metrics=metrics)
    return app
