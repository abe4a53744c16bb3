"""R10: API keys. A matrix over every route of the app (enumerated, so a new route is covered the
day it is added) × {no key, wrong key, read-only key, read-write key}; the ways a key may and may
not be sent; keys from files; configurations that are refused; the OpenAPI declaration; and
keys never reaching a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from service import auth
from service.app import create_app

from .http_support import DOCS, http_settings, wait_ready

RW, RO = "rw-key-9f2c1e", "ro-key-77ab30"
AS = {
    "none": {},
    "wrong": {"Authorization": "Bearer not-the-key"},
    "ro": {"Authorization": f"Bearer {RO}"},
    "rw": {"Authorization": f"Bearer {RW}"},
}
PATH_PARAMS = {"name": "docs", "doc_id": "cat", "topic": "softmax", "path": "swagger-ui.css"}
# A request each known route answers with a 2xx; a route missing here (added later) is still
# checked for 401/403, only not for its 2xx.
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/collections"): {"json": {"name": "more"}},
    ("PUT", "/v1/collections/{name}/documents"): {"json": {"documents": [DOCS[0]]}},
    ("POST", "/v1/collections/{name}/documents/delete"): {"json": {"ids": ["dog"]}},
    ("POST", "/v1/collections/{name}/search"): {"json": {"query": "cat"}},
    ("POST", "/v1/collections/{name}/search/batch"): {"json": {"searches": [{"query": "a"}]}},
    ("GET", "/v1/analogy"): {"params": {"q": "cat-dog+car", "collection": "docs"}},
    ("POST", "/v1/analogy"): {"json": {"positive": ["cat"], "collection": "docs"}},
    ("POST", "/v1/similarity"): {"json": {"texts": ["a cat", "a dog"]}},
    ("POST", "/v1/embeddings"): {"json": {"input": "a cat"}},
    ("POST", "/v1/math/softmax"): {"json": {"logits": [2.0, 1.0]}},
    ("POST", "/v1/math/attention"): {"json": {"Q": [[1.0]], "K": [[1.0]], "V": [[1.0]]}},
    ("POST", "/v1/math/descent"): {"json": {"steps": 2}},
    ("GET", "/v1/math/plot/descent"): {"params": {"steps": 2}},
    ("GET", "/v1/math/plot/softmax"): {"params": {"logits": [1.0, 2.0], "temperatures": [1.0]}},
    ("GET", "/v1/math/plot/complexity"): {"params": {"n_max": 256, "repeats": 1}},
    ("GET", "/v1/math/plot/attention"): {"params": {"text": "a cat"}},
}
NO_BODY = [
    ("GET", "/v1/collections"),
    ("GET", "/v1/collections/{name}"),
    ("DELETE", "/v1/collections/{name}"),
    ("GET", "/v1/collections/{name}/documents"),
    ("GET", "/v1/collections/{name}/documents/{doc_id}"),
    ("DELETE", "/v1/collections/{name}/documents/{doc_id}"),
    ("GET", "/v1/math/explain"),
    ("GET", "/v1/math/explain/{topic}"),
]
EXAMPLES.update({route: {} for route in NO_BODY})


def every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, route template) for every route the app serves, mounts included."""
    out = []
    for route in iter_route_contexts(app.routes):
        methods = route.methods or {"GET"}  # a mount (static files)
        out += [(m, str(route.path_format)) for m in sorted(methods)]
    return out


def url_of(template: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_PARAMS.get(m.group(1), "x"), template)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(http_settings(tmp_path, api_key=RW, read_only_api_key=RO))
    with TestClient(app) as c:
        c.headers.update(AS["rw"])
        wait_ready(c)
        reset(c)
        c.headers.clear()
        yield c


def reset(c: TestClient) -> None:
    """The `docs` collection with DOCS, whatever the previous request did to it."""
    h = AS["rw"]
    c.post("/v1/collections", json={"name": "docs", "get_or_create": True}, headers=h)
    assert c.put("/v1/collections/docs/documents", json={"documents": DOCS}, headers=h).is_success


def state(c: TestClient) -> Any:
    r = c.get("/v1/collections", headers=AS["rw"])
    return [(x["name"], x["count"], x["seq"]) for x in r.json()["collections"]]


def call(c: TestClient, method: str, template: str, who: str) -> Any:
    kwargs = EXAMPLES.get((method, template), {})
    return c.request(method, url_of(template), headers=AS[who], **kwargs)


def test_the_matrix_covers_every_route(keyed: TestClient) -> None:
    routes = every_route(keyed.app)  # type: ignore[arg-type]
    assert len(routes) >= 30
    before = state(keyed)
    for method, template in routes:
        access = auth.access_of(method, template)
        for who in ("none", "wrong", "ro", "rw"):
            r = call(keyed, method, template, who)
            where = f"{method} {template} as {who}: {r.status_code} {r.text[:200]}"
            expect_matrix_cell(r, access, who, (method, template), where)
            if r.status_code in (401, 403):
                assert state(keyed) == before, f"refused but changed: {where}"
            elif access == "write":  # it ran: put the data back for the next cells
                reset(keyed)
                before = state(keyed)


def expect_matrix_cell(r: Any, access: str, who: str, route: tuple[str, str], where: str) -> None:
    if access == "open":
        assert r.status_code < 400, where
        return
    if who in ("none", "wrong"):
        assert r.status_code == 401, where
        assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
        assert RW not in r.text and RO not in r.text
    elif who == "ro" and access == "write":
        assert r.status_code == 403, where
        assert r.json()["error"] == "forbidden"
    elif route in EXAMPLES:
        assert 200 <= r.status_code < 300, where
    else:
        assert r.status_code not in (401, 403), where


def test_the_read_table_names_only_real_routes(keyed: TestClient) -> None:
    """A typo in the table would silently make a read a write (safe, but wrong)."""
    routes = set(every_route(keyed.app))  # type: ignore[arg-type]
    stale = {r for r in auth.READ_ROUTES if r not in routes and r != ("GET", "/metrics")}
    assert not stale
    assert {r for r in auth.OPEN_ROUTES} <= {t for _, t in routes}


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {RW}"},
        {"Authorization": f"bearer {RW}"},
        {"api-key": RW},
        {"X-API-Key": RW},
    ],
)
def test_a_key_may_come_in_any_of_the_three_headers(
    keyed: TestClient, headers: dict[str, str]
) -> None:
    assert keyed.get("/v1/collections", headers=headers).status_code == 200
    r = keyed.post("/v1/collections", json={"name": "viaheader"}, headers=headers)
    assert r.status_code == 201


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({}, {"api_key": RW}),  # never in the URL: URLs end up in logs and histories
        ({}, {"api-key": RW}),
        ({"Authorization": RW}, {}),  # no scheme
        ({"Authorization": f"Basic {RW}"}, {}),
        ({"api-key": ""}, {}),
        ({"api-key": RW[:-1]}, {}),
        ({"api-key": RW + "x"}, {}),
        ({"api-key": "not-the-key", "Authorization": f"Bearer {RW}"}, {}),  # api-key wins
    ],
)
def test_keys_elsewhere_or_wrong_are_401(
    keyed: TestClient, headers: dict[str, str], params: dict[str, str]
) -> None:
    r = keyed.get("/v1/collections", headers=headers, params=params)
    assert r.status_code == 401, r.text


def test_the_read_only_key_reads_but_never_writes(keyed: TestClient) -> None:
    ro = AS["ro"]
    assert keyed.post("/v1/collections/docs/search", json={"query": "cat"}, headers=ro).is_success
    before = state(keyed)
    for method, url, body in [
        ("PUT", "/v1/collections/docs/documents", {"documents": [DOCS[0]]}),
        ("POST", "/v1/collections/docs/documents/delete", {"ids": ["cat"]}),
        ("DELETE", "/v1/collections/docs/documents/cat", None),
        ("DELETE", "/v1/collections/docs", None),
        ("POST", "/v1/collections", {"name": "other"}),
    ]:
        r = keyed.request(method, url, json=body, headers=ro)
        assert r.status_code == 403, (method, url, r.text)
        assert "read-only" in r.json()["detail"]
    assert state(keyed) == before


def test_an_unknown_route_needs_a_key_and_is_404_with_one(keyed: TestClient) -> None:
    assert keyed.get("/v1/nothing-here").status_code == 401  # no map of routes for strangers
    assert keyed.get("/v1/nothing-here", headers=AS["ro"]).status_code == 404
    assert keyed.patch("/v1/collections", headers=AS["rw"]).status_code == 405


def test_health_is_open_and_says_nothing_without_a_key(keyed: TestClient) -> None:
    assert keyed.get("/livez").json() == {"status": "ok"}
    anonymous = keyed.get("/readyz")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ready"}  # no collection names, no problems
    for who in ("wrong",):
        assert keyed.get("/readyz", headers=AS[who]).json() == {"status": "ready"}
    detailed = keyed.get("/readyz", headers=AS["ro"]).json()
    assert detailed["collections"] == ["docs"]


def test_keys_from_files_and_empty_keys(tmp_path: Path) -> None:
    (tmp_path / "rw").write_text(RW + "\n")
    (tmp_path / "ro").write_text(f"  {RO}  \n")
    settings = http_settings(
        tmp_path, api_key_file=tmp_path / "rw", read_only_api_key_file=tmp_path / "ro"
    )
    with TestClient(create_app(settings)) as c:
        assert c.get("/v1/collections").status_code == 401
        assert c.get("/v1/collections", headers=AS["rw"]).status_code == 200
        r = c.post("/v1/collections", json={"name": "x"}, headers=AS["ro"])
        assert r.status_code == 403
    for empty in ("", "   "):  # an empty key is no key (Qdrant does the same)
        with TestClient(create_app(http_settings(tmp_path, api_key=empty))) as c:
            assert c.get("/v1/collections").status_code == 200
            assert "securitySchemes" not in c.get("/openapi.json").json()["components"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"read_only_api_key": RO}, "needs VP_API_KEY"),
        ({"api_key": RW, "read_only_api_key": RW}, "must differ"),
        ({"api_key": RW, "api_key_file": Path("/dev/null")}, "not both"),
        ({"api_key_file": Path("/nonexistent/key")}, "cannot read"),
    ],
)
def test_unusable_key_settings_are_refused(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(http_settings(tmp_path, **overrides))


def test_openapi_declares_the_keys_so_docs_has_an_authorize_button(keyed: TestClient) -> None:
    schema = keyed.get("/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "the API key as a token",
    }
    assert schemes["apiKey"]["name"] == "api-key"
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if auth.access_of(method.upper(), path) == "open":
                assert "security" not in op, path
                continue
            assert op["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)
            assert "401" in op["responses"], (method, path)
            writes = auth.access_of(method.upper(), path) == "write"
            assert ("403" in op["responses"]) == writes, (method, path)


def test_keys_are_compared_in_constant_time() -> None:
    source = Path(auth.__file__).read_text()
    assert "hmac.compare_digest" in source
    assert not re.search(r"(presented|digest|key)\s*==\s*", source)


def test_keys_never_reach_the_log(keyed: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        for who in ("none", "wrong", "ro", "rw"):
            keyed.get("/v1/collections", headers=AS[who])
            keyed.post("/v1/collections", json={"name": "logged"}, headers=AS[who])
        keyed.get("/v1/collections", params={"note": "x"}, headers={"api-key": RW})
    text = caplog.text + repr(keyed.app.state.settings)  # type: ignore[attr-defined]
    assert RW not in text and RO not in text
    assert "**********" in repr(keyed.app.state.settings)  # type: ignore[attr-defined]
