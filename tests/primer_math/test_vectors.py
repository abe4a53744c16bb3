"""vectors.py against torch and scipy, the unit-vector identities as properties, and
king - man + woman on the real model's vectors with primer_math alone."""

from collections.abc import Callable

import numpy as np
import pytest
import scipy.spatial.distance as sd
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from primer_math.vectors import (
    angle,
    cosine,
    cosine_scores,
    dot,
    dot_scores,
    l2_distance,
    l2_distances,
    normalize,
    rank,
    three_cos_add,
    three_cos_mul,
    unit_l2_squared,
)

nonzero_pairs = st.integers(2, 32).flatmap(
    lambda d: st.tuples(
        *(arrays(np.float64, d, elements=st.floats(-100, 100)) for _ in range(2))
    ).filter(lambda ab: min(np.linalg.norm(ab[0]), np.linalg.norm(ab[1])) > 1e-3)
)


def test_pairwise_quantities_match_torch_and_scipy(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(2, 64))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert cosine(a, b) == pytest.approx(F.cosine_similarity(ta, tb, dim=0).item(), abs=1e-14)
    assert cosine(a, b) == pytest.approx(1 - sd.cosine(a, b), abs=1e-14)
    assert l2_distance(a, b) == pytest.approx(sd.euclidean(a, b), abs=1e-12)
    assert l2_distance(a, b) == pytest.approx(torch.dist(ta, tb).item(), abs=1e-12)
    assert dot(a, b) == pytest.approx(torch.dot(ta, tb).item(), abs=1e-12)
    theta = np.degrees(np.arccos(np.clip(1 - sd.cosine(a, b), -1, 1)))
    assert angle(a, b) == pytest.approx(theta, abs=1e-9)


def test_one_query_against_a_matrix_matches_scipy(rng: np.random.Generator) -> None:
    q, M = rng.normal(size=8), rng.normal(size=(50, 8))
    np.testing.assert_allclose(cosine_scores(q, M), 1 - sd.cdist(q[None], M, "cosine")[0])
    np.testing.assert_allclose(l2_distances(q, M), sd.cdist(q[None], M)[0])
    np.testing.assert_allclose(dot_scores(q, M), M @ q)


@settings(max_examples=60, deadline=None)
@given(nonzero_pairs)
def test_unit_vectors_dot_is_cosine_and_l2_squared_is_two_minus_two_cos(ab: tuple) -> None:
    a, b = normalize(ab[0]), normalize(ab[1])
    assert dot(a, b) == pytest.approx(cosine(ab[0], ab[1]), abs=1e-12)
    assert l2_distance(a, b) ** 2 == pytest.approx(unit_l2_squared(cosine(a, b)), abs=1e-12)


def test_cosine_dot_and_l2_rank_unit_vectors_alike(rng: np.random.Generator) -> None:
    q, M = normalize(rng.normal(size=16)), normalize(rng.normal(size=(200, 16)))
    by_cos, by_dot = rank(cosine_scores(q, M)), rank(dot_scores(q, M))
    by_l2 = np.argsort(l2_distances(q, M), kind="stable")
    np.testing.assert_array_equal(by_cos, by_dot)
    np.testing.assert_array_equal(by_cos, by_l2)


def test_three_cos_add_ranks_like_the_sum_of_cosines(rng: np.random.Generator) -> None:
    a, b, c = rng.normal(size=(3, 16))
    M = rng.normal(size=(100, 16))
    ours = three_cos_add(a, b, c, M)
    summed = cosine_scores(b, M) - cosine_scores(a, M) + cosine_scores(c, M)  # Mikolov's form
    scale = np.linalg.norm(normalize(b) - normalize(a) + normalize(c))
    np.testing.assert_allclose(ours * scale, summed, atol=1e-12)
    np.testing.assert_array_equal(rank(ours), rank(summed))


def test_three_cos_mul_is_levy_and_goldbergs_formula(rng: np.random.Generator) -> None:
    a, b, c = rng.normal(size=(3, 16))
    M = rng.normal(size=(100, 16))
    s = [(1 - sd.cdist(v[None], M, "cosine")[0] + 1) / 2 for v in (a, b, c)]
    np.testing.assert_allclose(three_cos_mul(a, b, c, M), s[1] * s[2] / (s[0] + 1e-3))


def test_excluded_rows_never_rank(rng: np.random.Generator) -> None:
    M = rng.normal(size=(10, 4))
    for scores in (three_cos_add(M[0], M[1], M[2], M, [0, 1, 2]),
                   three_cos_mul(M[0], M[1], M[2], M, [0, 1, 2])):  # fmt: skip
        assert not {0, 1, 2} & set(rank(scores).tolist()) and len(rank(scores)) == 7


# A few hundred common English words: the analogy's answer must win against all of them, not
# against a hand-picked handful. Royal, family and gendered words are deliberately included.
VOCABULARY = """
queen king man woman princess prince girl boy lady gentleman monarch emperor empress duke duchess
throne crown royal kingdom palace castle knight lord sir madam mother father daughter son sister
brother aunt uncle niece nephew wife husband bride groom grandmother grandfather widow actress actor
waitress waiter heroine hero goddess god nun priest female male feminine masculine mrs mr ms
child baby adult teenager person people family friend neighbor stranger citizen leader ruler chief
president minister governor mayor senator judge lawyer doctor nurse teacher student professor
scientist engineer artist writer poet singer dancer painter farmer soldier sailor pilot driver
chef baker butcher hunter fisherman shepherd servant maid slave master boss worker employee
city town village country nation state world earth sky sun moon star planet ocean sea river lake
mountain hill valley forest tree flower grass garden field farm house home room door window wall
floor roof kitchen table chair bed desk book paper pen letter word name story song music dance
art picture film movie game sport ball team player coach match race horse dog cat bird fish lion
tiger bear wolf fox rabbit mouse snake cow pig sheep goat chicken duck eagle owl bee ant spider
food bread cheese meat apple orange banana fruit vegetable rice soup cake sugar salt water milk
coffee tea wine beer juice car bus train plane ship boat bicycle road street bridge station airport
school college university library museum hospital church temple market shop store bank office
factory hotel restaurant money price gold silver iron stone wood glass fire light dark color red
blue green yellow black white day night morning evening week month year time hour minute summer
winter spring autumn rain snow wind storm cloud weather hot cold warm cool big small long short
high low old new young good bad happy sad rich poor strong weak fast slow hard soft beautiful
ugly smart brave kind cruel love hate war peace life death health power law rule government army
battle victory history future past science language truth dream idea problem question answer
computer phone internet software machine robot data number business company
""".split()  # noqa: SIM905 (a block of words reads better than 340 quoted strings)


@pytest.fixture(scope="module")
def vocabulary_vectors(
    minilm_encode: Callable[[list[str]], np.ndarray],
) -> tuple[list[str], np.ndarray]:
    words = list(dict.fromkeys(VOCABULARY))
    return words, minilm_encode(words)


@pytest.mark.model
@pytest.mark.parametrize("method", [three_cos_add, three_cos_mul])
@pytest.mark.parametrize(("a", "b", "c"), [("man", "king", "woman"), ("boy", "king", "girl")])
def test_king_minus_man_plus_woman_is_queen_on_the_real_model(
    vocabulary_vectors: tuple[list[str], np.ndarray], method: Callable, a: str, b: str, c: str
) -> None:
    words, E = vocabulary_vectors
    assert len(words) >= 300
    i = {w: n for n, w in enumerate(words)}
    scores = method(E[i[a]], E[i[b]], E[i[c]], E, exclude=[i[a], i[b], i[c]])
    top = [words[j] for j in rank(scores, 3)]
    assert top[0] == "queen", top


@pytest.mark.model
def test_without_excluding_the_inputs_the_nearest_word_is_an_input(
    vocabulary_vectors: tuple[list[str], np.ndarray],
) -> None:
    """Why analogy search excludes its inputs: b - a + c usually lies closest to b or c."""
    words, E = vocabulary_vectors
    i = {w: n for n, w in enumerate(words)}
    scores = three_cos_add(E[i["man"]], E[i["king"]], E[i["woman"]], E)
    assert words[rank(scores)[0]] in {"king", "woman"}
