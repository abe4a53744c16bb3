"""Pairwise similarity over HTTP, and the geometry behind it checked against primer_math."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from primer_math import vectors
from service.geometry import pairwise

from .conftest import RecordingClient, assert_error


def test_pairwise_matches_the_one_pair_formulas() -> None:
    X = np.random.default_rng(0).normal(size=(5, 7))
    m = pairwise(X)
    for i in range(5):
        for j in range(5):
            a, b = X[i], X[j]
            assert m["dot"][i, j] == pytest.approx(vectors.dot(a, b), abs=1e-9)
            assert m["cosine"][i, j] == pytest.approx(vectors.cosine(a, b), abs=1e-9)
            assert m["l2"][i, j] == pytest.approx(vectors.l2_distance(a, b), abs=1e-7)
            assert m["angle_degrees"][i, j] == pytest.approx(vectors.angle(a, b), abs=1e-5)


def test_pairwise_hand_worked_case() -> None:
    m = pairwise(np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    assert m["cosine"].tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert m["angle_degrees"][0, 1] == pytest.approx(90.0)
    assert m["l2"][0, 1] == pytest.approx(5**0.5)
    assert m["dot"][1, 1] == 4.0
    assert m["l2"][0, 0] == 0.0


def test_two_texts_give_four_numbers(client: RecordingClient) -> None:
    r = client.post("/v1/similarity", json={"texts": ["the cat sat", "the cat ran"]})
    body = r.json()
    assert (body["embedder"], body["dim"]) == ("hash-384", 384)
    pair = body["pair"]
    assert set(pair) == {"cosine", "l2", "dot", "angle_degrees"}
    assert 0 < pair["cosine"] < 1
    assert pair["cosine"] == body["cosine"][0][1] == body["cosine"][1][0]
    assert pair["l2"] == pytest.approx((2 - 2 * pair["cosine"]) ** 0.5, abs=1e-6)  # unit vectors
    assert pair["angle_degrees"] == pytest.approx(np.degrees(np.arccos(pair["cosine"])))
    assert body["cosine"][0][0] == 1.0
    assert body["angle_degrees"][1][1] == 0.0


def test_many_texts_give_symmetric_matrices(client: RecordingClient) -> None:
    texts = ["a", "b c", "c d e", "the cat"]
    body = client.post("/v1/similarity", json={"texts": texts}).json()
    assert "pair" not in body
    assert body["texts"] == texts
    for name in ("cosine", "l2", "dot", "angle_degrees"):
        M = np.array(body[name])
        assert M.shape == (4, 4)
        np.testing.assert_allclose(M, M.T, atol=1e-9)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"texts": ["only one"]}, "texts"),
        ({"texts": ["a", ""]}, "texts[1]"),
        ({"texts": ["a", "  "]}, "texts[1]"),
        ({"texts": ["a", 3]}, "texts[1]"),
        ({"texts": ["a"] * 257}, "texts"),
        ({"texts": "a b"}, "texts"),
        ({}, "texts"),
    ],
)
def test_bad_similarity_is_422(client: RecordingClient, body: dict[str, Any], field: str) -> None:
    assert_error(client.post("/v1/similarity", json=body), 422, "invalid_input", field)
