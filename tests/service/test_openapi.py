"""Every route in the OpenAPI schema is exercised by some test of this suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.app import create_app

from .conftest import EXERCISED, SESSION, make_settings


def template_of(path: str, templates: list[str]) -> str | None:
    """The most specific OpenAPI path a URL path fits ('/v1/collections/{name}')."""
    fits = [t for t in templates if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)]
    return min(fits, key=lambda t: t.count("{"), default=None)


def test_template_of_prefers_literal_segments() -> None:
    templates = ["/c/{name}/documents/{doc_id}", "/c/{name}/documents/delete", "/c/{name}"]
    assert template_of("/c/a/documents/delete", templates) == "/c/{name}/documents/delete"
    assert template_of("/c/a/documents/x", templates) == "/c/{name}/documents/{doc_id}"
    assert template_of("/c/a", templates) == "/c/{name}"
    assert template_of("/elsewhere", templates) is None


def test_every_openapi_route_is_exercised(tmp_path: Path) -> None:
    """Runs last (see conftest): every (method, path) of the schema was called by some test."""
    if not SESSION["whole_suite"]:
        pytest.skip("needs the whole tests/service suite in this session")
    paths = create_app(make_settings(tmp_path)).openapi()["paths"]
    routes = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    assert len(routes) >= 17
    called = set()
    for method, path in EXERCISED:
        templates = [p for p, ops in paths.items() if method.lower() in ops]
        called.add((method, template_of(path, templates)))
    missing = sorted(routes - called)
    assert not missing, f"routes no test calls: {missing}"
