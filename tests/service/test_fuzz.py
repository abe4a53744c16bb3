"""Arbitrary JSON at every endpoint that takes a body: a 2xx or a 4xx in the error shape, never a
5xx, and a refused request changes nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import RecordingClient

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | (st.floats(allow_nan=True, allow_infinity=True))
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = [
    "documents",
    "id",
    "text",
    "vector",
    "metadata",
    "query",
    "k",
    "filter",
    "searches",
    "positive",
    "negative",
    "collection",
    "method",
    "texts",
    "input",
    "model",
    "ids",
    "name",
    "metric",
    "index",
    "params",
    "dim",
    "embedder",
    "score_threshold",
]
DOCUMENT = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=10), "text": st.text(min_size=1, max_size=20)},
    optional={"metadata": JSON, "vector": JSON},
)
NEAR_VALID = (
    st.fixed_dictionaries({"documents": st.lists(DOCUMENT, min_size=1, max_size=3)})
    | st.fixed_dictionaries({"query": st.just("cat"), "filter": JSON})
    | st.fixed_dictionaries({"filter": JSON})
    | st.fixed_dictionaries({"positive": st.lists(st.text(max_size=8), max_size=3)})
)
BODIES = JSON | st.dictionaries(st.sampled_from(KEYS), JSON, max_size=4) | NEAR_VALID
ENDPOINTS = [
    ("POST", "/v1/collections"),
    ("PUT", "/v1/collections/docs/documents"),
    ("POST", "/v1/collections/docs/documents/delete"),
    ("POST", "/v1/collections/docs/search"),
    ("POST", "/v1/collections/docs/search/batch"),
    ("POST", "/v1/analogy"),
    ("POST", "/v1/similarity"),
    ("POST", "/v1/embeddings"),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(endpoint=st.sampled_from(ENDPOINTS), body=BODIES)
def test_no_body_makes_a_5xx(docs: RecordingClient, endpoint: tuple[str, str], body: Any) -> None:
    before = docs.get("/v1/collections/docs").json()
    raw = json.dumps(body)  # NaN and Infinity go out as the bare tokens Python writes
    r = docs.request(*endpoint, content=raw, headers={"content-type": "application/json"})
    assert r.status_code < 500, (endpoint, raw, r.text)
    if r.status_code >= 400:
        assert {"error", "detail", "field"} <= set(r.json())
        assert docs.get("/v1/collections/docs").json() == before
