"""Liveness (the process answers) and readiness (collections loaded, `words` built)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.auth import may_see_details
from service.errors import error_response
from service.models import ErrorResponse, LiveResponse, ReadyResponse

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> LiveResponse:
    """The process is up and answering; says nothing about the collections."""
    return LiveResponse()


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ErrorResponse, "description": "still starting or failed"}},
)
async def readyz(request: Request) -> ReadyResponse | JSONResponse:
    """200 once the collections are open and the `words` collection is built; 503 until then."""
    warmup = request.app.state.warmup
    shown = may_see_details(request)  # with API keys on, details need a key
    if warmup.failed is not None:
        return error_response(503, "not_ready", "start-up failed" + _detail(warmup.failed, shown))
    if not warmup.ready.is_set():
        return error_response(503, "not_ready", "starting" + _detail(warmup.progress, shown))
    if not shown:
        return ReadyResponse()
    return ReadyResponse(
        collections=warmup.collection_names(), words=warmup.words, problems=warmup.problems
    )


def _detail(text: str, shown: bool) -> str:
    return f": {text}" if shown else " (send the API key for details)"
