"""/v1/math/*: every endpoint, its answers checked against primer_math and torch, and every bound
refused with a 422 (never a 500). The router is mounted on a bare FastAPI app with the service's
error handlers; the engine is a stand-in whose embedder is the deterministic hash embedder."""

import io
import json
from collections.abc import Iterator
from typing import Any

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.embed import load_embedder
from primer_math.descent import run
from service.deps import get_engine
from service.errors import install_error_handlers
from service.routers import math as math_router


class StandInEngine:
    """Just enough engine for the math router: the default embedder."""

    def __init__(self, embedder_name: str) -> None:
        self.name = embedder_name

    def embedder(self) -> Any:
        return load_embedder(self.name)


def make_client(embedder_name: str = "hash-384") -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(math_router.router)
    app.dependency_overrides[get_engine] = lambda: StandInEngine(embedder_name)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def assert_422(r: Any, field: str | None = None) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_input" and "Traceback" not in r.text
    if field is not None:
        assert body["field"].startswith(field), body


def assert_png(r: Any, min_width: int = 300, min_height: int = 250) -> None:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    image = matplotlib.image.imread(io.BytesIO(r.content), format="png")
    assert image.shape[1] >= min_width and image.shape[0] >= min_height
    assert image[..., :3].std() > 0.05


# ---- softmax ------------------------------------------------------------------------------------
def test_softmax_gives_the_worked_example(client: TestClient) -> None:
    body = client.post("/v1/math/softmax", json={"logits": [2.0, 1.0, 0.1]}).json()
    assert [round(p, 2) for p in body["probs"]] == [0.66, 0.24, 0.10]
    assert body["kept"] == [0, 1, 2] and body["sampled_probs"] == body["probs"]
    assert body["entropy"] == pytest.approx(-sum(p * np.log(p) for p in body["probs"]))


def test_softmax_temperature_top_p_and_top_k(client: TestClient) -> None:
    cold = client.post("/v1/math/softmax", json={"logits": [2.0, 1.0, 0.1], "temperature": 0.1})
    assert cold.json()["probs"][0] > 0.9999
    r = client.post(
        "/v1/math/softmax", json={"logits": [3.0, 2.0, 1.0, 0.0], "top_k": 3, "top_p": 0.7,
                                  "temperature": 2.0},
    )  # fmt: skip
    body = r.json()
    assert body["kept"] == [0, 1] and body["sampled_probs"][2:] == [0.0, 0.0]
    assert sum(body["sampled_probs"]) == pytest.approx(1.0)
    assert body["kept_entropy"] < body["entropy"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"logits": []}, "logits"),
        ({"logits": [0.0] * 4097}, "logits"),
        ({"logits": ["a"]}, "logits"),
        ({"logits": [1.0], "temperature": 0}, "temperature"),
        ({"logits": [1.0], "temperature": 101}, "temperature"),
        ({"logits": [1.0], "top_p": 0}, "top_p"),
        ({"logits": [1.0], "top_p": 1.5}, "top_p"),
        ({"logits": [1.0], "top_k": 0}, "top_k"),
        ({"logits": [1.0], "temprature": 0.5}, "temprature"),
        ({}, "logits"),
    ],
)
def test_softmax_refuses_out_of_bounds_input(client: TestClient, body: dict, field: str) -> None:
    assert_422(client.post("/v1/math/softmax", json=body), field)


@pytest.mark.parametrize(
    "raw", ['{"logits": [NaN]}', '{"logits": [1e999]}', '{"logits": [-Infinity]}']
)
def test_softmax_refuses_non_finite_numbers(client: TestClient, raw: str) -> None:
    r = client.post("/v1/math/softmax", content=raw, headers={"content-type": "application/json"})
    assert_422(r)


def test_softmax_of_the_largest_finite_logits_is_still_a_distribution(client: TestClient) -> None:
    r = client.post("/v1/math/softmax", json={"logits": [1.7e308, -1.7e308], "temperature": 1e-3})
    assert r.status_code == 200 and r.json()["probs"] == [1.0, 0.0]


# ---- attention ----------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_attention_on_matrices_matches_torch(
    client: TestClient, rng: np.random.Generator, causal: bool
) -> None:
    Q, K, V = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 3))
    body = {"Q": Q.tolist(), "K": K.tolist(), "V": V.tolist(), "causal": causal}
    r = client.post("/v1/math/attention", json=body)
    assert r.status_code == 200, r.text
    body = r.json()
    ref = F.scaled_dot_product_attention(*map(torch.from_numpy, (Q, K, V)), is_causal=causal)
    np.testing.assert_allclose(body["output"], ref.numpy(), atol=1e-12)
    np.testing.assert_allclose(np.sum(body["weights"], axis=1), 1.0)
    assert body["scale"] == pytest.approx(0.5) and body["tokens"] is None


def test_attention_over_a_texts_tokens(client: TestClient) -> None:
    r = client.post("/v1/math/attention", json={"text": "the cat sat on the mat", "causal": True})
    body = r.json()
    assert body["tokens"] == ["the", "cat", "sat", "on", "the", "mat"]
    assert body["embedder"] == "hash-384"
    A = np.array(body["weights"])
    assert A.shape == (6, 6) and np.allclose(np.triu(A, 1), 0) and np.allclose(A.sum(1), 1)
    assert np.array(body["output"]).shape == (6, 384)


@pytest.mark.model
def test_attention_over_the_real_models_token_embeddings() -> None:
    with make_client("all-MiniLM-L6-v2") as c:
        body = c.post("/v1/math/attention", json={"text": "the cat sat on the mat"}).json()
    assert body["tokens"] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    A = np.array(body["weights"])
    assert A.shape == (8, 8) and np.allclose(A.sum(1), 1) and (A > 0).all()
    assert body["embedder"] == "all-MiniLM-L6-v2"


ROW = [[1.0, 0.0]]


@pytest.mark.parametrize(
    "body",
    [
        {"Q": ROW, "K": ROW},  # no V
        {"text": "hi", "Q": ROW, "K": ROW, "V": ROW},  # both kinds of input
        {},  # neither
        {"Q": [[1.0, 0.0], [1.0]], "K": ROW, "V": ROW},  # ragged
        {"Q": [[1.0, 0.0, 0.0]], "K": ROW, "V": ROW},  # Q and K widths differ
        {"Q": ROW, "K": ROW, "V": [[1.0], [2.0]]},  # K and V lengths differ
        {"Q": [[0.0]] * 513, "K": [[0.0]], "V": [[0.0]]},  # too many rows
        {"Q": [[0.0] * 513], "K": [[0.0] * 513], "V": [[0.0]]},  # too wide
        {"Q": [[1e7, 0.0]], "K": ROW, "V": ROW},  # entry too large
        {"Q": [[]], "K": ROW, "V": ROW},  # empty row
        {"text": "   "},
        {"text": "x" * 1001},
    ],
)
def test_attention_refuses_bad_or_huge_input(client: TestClient, body: dict) -> None:
    assert_422(client.post("/v1/math/attention", json=body))


# ---- descent ------------------------------------------------------------------------------------
def test_descent_returns_the_primer_math_trajectory(client: TestClient) -> None:
    req = {"surface": "bowl", "optimizer": "momentum", "lr": 0.03, "steps": 50,
           "start": [2.0, -1.0]}  # fmt: skip
    body = client.post("/v1/math/descent", json=req).json()
    t = run("bowl", "momentum", 0.03, 50, [2.0, -1.0])
    np.testing.assert_allclose(body["trajectory"], t.points)
    np.testing.assert_allclose(body["losses"], t.losses)
    assert body["diverged"] is False and body["minimum"] == [0.0, 0.0]


def test_descent_defaults_and_divergence_are_plain_json(client: TestClient) -> None:
    body = client.post("/v1/math/descent", json={}).json()
    assert body["surface"] == "rosenbrock" and body["optimizer"] == "adam" and body["lr"] == 0.1
    r = client.post("/v1/math/descent",
                    json={"surface": "rosenbrock", "optimizer": "sgd", "lr": 10, "steps": 10000,
                          "start": [100, -100]})  # fmt: skip
    assert r.status_code == 200 and r.json()["diverged"] is True
    assert np.isfinite(r.json()["losses"]).all()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 10_001}, "steps"),
        ({"lr": 0}, "lr"),
        ({"lr": 11}, "lr"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"surface": "moon"}, "surface"),
        ({"start": [0.0, 101.0]}, "start"),
        ({"start": [0.0, 1.0, 2.0]}, "start"),
        ({"weight_decay": -1}, "weight_decay"),
    ],
)
def test_descent_refuses_out_of_bounds_input(client: TestClient, body: dict, field: str) -> None:
    assert_422(client.post("/v1/math/descent", json=body), field)


# ---- explain ------------------------------------------------------------------------------------
def test_explain_a_topic_and_an_alias(client: TestClient) -> None:
    body = client.get("/v1/math/explain/attention").json()
    assert body["title"] == "Attention as a similarity-weighted average"
    assert set(body) >= {"intuition", "formula", "for_llm_apps"}
    assert client.get("/v1/math/explain/geometry").json()["topic"] == "vectors"


def test_explain_unknown_topic_is_a_json_404(client: TestClient) -> None:
    r = client.get("/v1/math/explain/astrology")
    assert r.status_code == 404
    assert r.json()["error"] == "topic_not_found" and r.json()["field"] == "topic"
    assert "known: vectors" in r.json()["detail"]


def test_list_topics(client: TestClient) -> None:
    body = client.get("/v1/math/explain").json()
    assert {"vectors", "softmax", "attention", "descent"} <= set(body["topics"])
    assert body["aliases"]["geometry"] == "vectors"


# ---- plots --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/v1/math/plot/softmax",
        "/v1/math/plot/softmax?logits=3&logits=-1&logits=0.5&temperatures=0.2&temperatures=4",
        "/v1/math/plot/attention?text=a%20dog%20chased%20the%20ball&causal=true",
        "/v1/math/plot/descent",
        "/v1/math/plot/descent?surface=bowl&optimizer=sgd&lr=0.1&steps=100",
        "/v1/math/plot/complexity?n_max=512&repeats=1",
    ],
)
def test_every_plot_is_a_valid_png(client: TestClient, url: str) -> None:
    assert_png(client.get(url))


@pytest.mark.parametrize(
    "url",
    [
        "/v1/math/plot/softmax?" + "&".join(["logits=1"] * 33),
        "/v1/math/plot/softmax?temperatures=0",
        "/v1/math/plot/softmax?logits=nan",
        "/v1/math/plot/attention?text=" + "x" * 1001,
        "/v1/math/plot/descent?steps=2001",
        "/v1/math/plot/descent?surface=moon",
        "/v1/math/plot/complexity?n_max=4096",
        "/v1/math/plot/complexity?repeats=100",
    ],
)
def test_plots_refuse_out_of_bounds_parameters(client: TestClient, url: str) -> None:
    assert_422(client.get(url))


def test_an_unknown_plot_kind_is_a_404(client: TestClient) -> None:
    assert client.get("/v1/math/plot/pie").status_code == 404


# ---- whatever arrives, the answer is a 200 or a 422, never a 500 --------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
fields = {
    "/v1/math/softmax": ["logits", "temperature", "top_p", "top_k"],
    "/v1/math/attention": ["Q", "K", "V", "text", "causal"],
    "/v1/math/descent": ["surface", "optimizer", "lr", "steps", "start", "weight_decay"],
}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(sorted(fields)), st.data())
def test_arbitrary_json_bodies_get_200_or_422_never_500(
    client: TestClient, path: str, data: st.DataObject
) -> None:
    keys = st.sampled_from(fields[path]) | st.text(max_size=4)
    body = data.draw(st.dictionaries(keys, json_values, max_size=4))
    raw = json.dumps(body)  # NaN and Infinity go out as the bare words, which must be refused too
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), (raw, r.text)


def test_the_service_app_mounts_the_math_router(tmp_path: Any) -> None:
    from indexer import Settings
    from service.app import create_app

    app = create_app(Settings(data_dir=tmp_path / "data", embedder="hash-384", build_words=False))
    with TestClient(app) as c:
        assert c.get("/v1/math/explain/softmax").json()["topic"] == "softmax"
        body = c.post("/v1/math/attention", json={"text": "a cat"}).json()
        assert body["tokens"] == ["a", "cat"]
        assert_422(c.post("/v1/math/descent", json={"steps": -1}), "steps")
