"""primer_math's routes (`service/routers/math.py`, tested in depth in tests/primer_math) are
mounted in the real app: each answers, behind the same middleware and error shape."""

from __future__ import annotations

import importlib.util

import pytest

from .conftest import RecordingClient

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("service.routers.math") is None, reason="no math router yet"
)


def test_every_math_route_answers_in_the_app(client: RecordingClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    math = [(m, p) for p, ops in paths.items() if p.startswith("/v1/math/") for m in ops]
    assert math
    for method, path in math:
        url = path.replace("{topic}", "attention")
        r = client.request(method.upper(), url, json={} if method == "post" else None)
        assert r.status_code in (200, 422), (method, path, r.text)
        if r.status_code == 422:  # an empty body is refused in the service's shape
            assert {"error", "detail", "field"} <= set(r.json())
