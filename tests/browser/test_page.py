"""The web page at `/`, driven in Chromium: each view does what it says with the real model's
numbers, works with an API key, and loads nothing from anywhere but the service."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from primer_math.surfaces import SURFACES
from vector_primer_client import Client

from ..ops.live import LiveServer
from .conftest import KEY, enter_key, screenshot

pytestmark = [pytest.mark.model, pytest.mark.slow]  # the real model, in a real browser


def probs(page: Any) -> list[float]:
    values = page.locator("#softmax-bars .bar").evaluate_all("bs => bs.map(b => +b.dataset.prob)")
    return [float(v) for v in values]


def test_the_page_needs_no_key_but_every_call_carries_the_one_typed(
    page: Any, server: LiveServer
) -> None:
    requests: list[Any] = []
    page.on("request", lambda r: requests.append(r))
    response = page.goto("/")
    assert response.status == 200
    assert "default-src 'self'" in response.headers["content-security-policy"]
    error = page.locator("#search-error")
    error.wait_for()
    assert "401 unauthorized" in error.inner_text() and "API key" in error.inner_text()

    enter_key(page)
    page.locator("#search-results tbody tr").first.wait_for()
    assert page.locator("#search-error").is_hidden()
    assert page.evaluate("sessionStorage.getItem('vp.apiKey')") == KEY
    api = [r for r in requests if "/v1/" in r.url]
    assert api[-1].headers.get("authorization") == f"Bearer {KEY}"
    assert all(r.url.startswith(server.url) for r in requests), [r.url for r in requests]
    page.reload()  # the key survives a reload of the tab (sessionStorage), not the tab itself
    assert page.input_value("#api-key") == KEY


def test_search_with_a_filter_shows_hits_and_scores(page: Any) -> None:
    page.goto("/#search")
    enter_key(page)
    page.select_option("#search-collection", "notes")
    page.fill("#search-query", "a kitten napping in sunshine")
    page.fill("#search-filter", '{"topic": "pets"}')
    page.fill("#search-k", "3")
    page.click("#search-form button")
    rows = page.locator("#search-results tbody tr")
    expect(page.locator("#search-summary")).to_contain_text("3 hits from notes")
    expect(rows).to_have_count(3)
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.id)")
    assert ids[0] == "n1" and set(ids) <= {"n1", "n2", "n3", "n8"}
    scores = [float(s) for s in page.locator("#search-results td.score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] < scores[0] <= 1
    assert "metric cosine (higher is closer)" in page.inner_text("#search-summary")
    expect(page.locator("#search-error")).to_be_hidden()
    screenshot(page, "search", readme=True)


# README's appliance manual: "blocked filter" ranks differently by vector and by BM25, and the
# long guide is stored as passages (48 tokens)
MANUAL = [
    ("e1234", "Error E1234 means the water pump is blocked: clean the filter."),
    ("noise", "A loud pump usually means a dirty filter."),
    ("noise2", "If the pump is loud, the filter is probably dirty."),
    ("reset", "Hold the power button for ten seconds to reset the machine."),
    (
        "guide",
        "Descaling keeps the machine working. Fill the tank with water and one sachet of "
        "descaler. Place a large bowl under the spout. Hold the descale button until the light "
        "blinks. The machine pumps the solution through in small doses for twenty minutes. When "
        "the light stays on, empty the bowl and rinse the tank. Fill the tank with clean water and "
        "run the rinse cycle twice. If the light blinks red during descaling, the filter is "
        "blocked: remove it, rinse it under the tap and start again. Descale every three months, "
        "or every month where the water is hard.",
    ),
]
SHOWN_HITS = """rs => rs.map(r => {
    const cell = (c) => r.querySelector(`td.${c}`);
    const side = (c) => cell(c) && (cell(c).querySelector('.rank')
        ? {rank: +cell(c).querySelector('.rank').textContent.slice(1),
           score: cell(c).querySelector('.val').textContent}
        : cell(c).textContent);
    return {id: r.dataset.id, score: cell('score').querySelector('.val').textContent,
        title: cell('score').title, why: cell('score').querySelector('.why')?.textContent,
        vector: side('vector'), keyword: side('keyword'), passage: cell('passage')?.textContent};
})"""


def shows_the_api_answer(page: Any, vp: Client, requests: list[Any]) -> list[dict[str, Any]]:
    """The table's rows are the API's hits for the body the page sent last, number for number."""
    body = requests[-1].post_data_json
    api = vp.request("POST", "/v1/collections/manual/search", json=body).json()["hits"]
    rows = page.locator("#search-results tbody tr").evaluate_all(SHOWN_HITS)
    assert [r["id"] for r in rows] == [h["id"] for h in api]
    for row, hit in zip(rows, api, strict=True):
        assert float(row["score"]) == pytest.approx(hit["score"], abs=5e-5)
        if body["mode"] == "hybrid":
            for name in ("vector", "keyword"):
                shown = row[name]
                if f"{name}_rank" in hit:
                    assert shown["rank"] == hit[f"{name}_rank"]
                    assert float(shown["score"]) == pytest.approx(hit[f"{name}_score"], abs=5e-5)
                else:
                    assert shown == "–"  # this side did not find it
        if (p := hit.get("passage")) is not None:
            assert row["passage"].startswith(f"#{p['index']} · {p['start']}–{p['end']}")
    return rows


def test_hybrid_search_shows_each_sides_rank_and_score_beside_the_fused_one(
    page: Any, server: LiveServer
) -> None:
    with Client(server.url, KEY) as vp:
        vp.create_collection("manual", chunking={"max_tokens": 48, "overlap": 8})
        vp.upsert("manual", [{"id": i, "text": t} for i, t in MANUAL])
        requests: list[Any] = []
        page.on("request", lambda r: "/search" in r.url and requests.append(r))
        page.goto("/#search")
        enter_key(page)
        page.locator("#search-results tbody tr").first.wait_for()
        page.select_option("#search-collection", "manual")
        page.fill("#search-query", "blocked filter")
        page.select_option("#search-mode", "hybrid")
        math_line = page.locator("#search-math")
        expect(math_line).to_contain_text("score = 1/(60 + vector rank) + 1/(60 + keyword rank)")
        expect(page.locator("#search-summary")).to_contain_text("rrf fusion of cosine and BM25")
        assert requests[-1].post_data_json == {
            "query": "blocked filter",
            "k": 5,
            "mode": "hybrid",
            "fusion": "rrf",
            "rrf_k": 60,
        }
        assert page.locator("#search-alpha-box").is_hidden()
        rows = shows_the_api_answer(page, vp, requests)
        both = [r for r in rows if isinstance(r["vector"], dict) and isinstance(r["keyword"], dict)]
        # the two rankings disagree: fusion has something to do
        assert any(r["vector"]["rank"] != r["keyword"]["rank"] for r in both)
        assert any(r["keyword"] == "–" for r in rows)  # found by its meaning alone
        for r in rows:  # the fused score is the sum shown beside it
            ranks = [s["rank"] for s in (r["vector"], r["keyword"]) if isinstance(s, dict)]
            assert r["why"] == "= " + " + ".join(f"1/(60 + {k})" for k in ranks)
            assert float(r["title"].rsplit("= ", 1)[1]) == pytest.approx(
                math.fsum(1 / (60 + k) for k in ranks), rel=1e-12
            )
        assert any(r["passage"].startswith("#") for r in rows)  # a passage of the guide
        expect(page.locator("#search-error")).to_be_hidden()
        screenshot(page, "search-hybrid", readme=True)

        page.select_option("#search-mode", "keyword")
        expect(math_line).to_contain_text("score = BM25")
        expect(page.locator("#search-summary")).to_contain_text("BM25 keyword scores")
        assert requests[-1].post_data_json["mode"] == "keyword"
        assert page.locator("#search-fusion-box").is_hidden()
        assert page.locator("#search-results th").all_inner_texts()[1] == "score"
        keyword = [r["id"] for r in shows_the_api_answer(page, vp, requests)]

        page.select_option("#search-mode", "vector")
        expect(math_line).to_contain_text("score = cosine(query vector, document vector)")
        plain = [r["id"] for r in shows_the_api_answer(page, vp, requests)]
        assert keyword != plain and len(keyword) < len(plain)  # BM25 needs one of the words
        assert "diversity" not in requests[-1].post_data_json  # the slider at 0 is off
        page.fill("#search-diversity", "60")
        expect(math_line).to_contain_text("MMR, diversity 0.60")
        assert page.inner_text("#search-diversity-value") == "0.60"
        assert requests[-1].post_data_json["diversity"] == 0.6
        diverse = [r["id"] for r in shows_the_api_answer(page, vp, requests)]
        assert diverse != plain and diverse[0] == plain[0]  # the best hit stays first
        page.fill("#search-diversity", "0")
        expect(math_line).not_to_contain_text("MMR")
        assert "diversity" not in requests[-1].post_data_json
        assert page.inner_text("#search-diversity-value") == "off"

        page.select_option("#search-mode", "hybrid")
        page.select_option("#search-fusion", "convex")
        expect(page.locator("#search-alpha-box")).to_be_visible()
        page.fill("#search-alpha", "30")
        page.check("#search-group")
        expect(math_line).to_contain_text("score = 0.30 · v′ + 0.70 · k′")
        expect(math_line).to_contain_text("One hit per document")
        body = requests[-1].post_data_json
        assert body["fusion"] == "convex" and body["alpha"] == 0.3 and body["group_by_document"]
        grouped = shows_the_api_answer(page, vp, requests)
        guide = next(r for r in grouped if r["id"] == "guide")
        assert re.fullmatch(r"#\d+ · \d+–\d+ · [2-9] matched", guide["passage"])
        expect(page.locator("#search-error")).to_be_hidden()


def test_typing_king_minus_man_plus_woman_gives_queen(page: Any) -> None:
    page.goto("/#analogy")
    enter_key(page)
    page.fill("#analogy-expr", "")
    page.type("#analogy-expr", "king - man + woman")
    page.press("#analogy-expr", "Enter")
    expect(page.locator("#analogy-summary")).to_contain_text("king - man + woman ≈")
    answers = page.locator("#analogy-results td.answer").all_inner_texts()
    assert answers[0] == "queen"
    assert not {"king", "man", "woman"} & set(answers)
    headers = page.locator("#analogy-results th").all_inner_texts()[3:]
    assert sorted(headers) == ["cos(·, +king)", "cos(·, +woman)", "cos(·, −man)"]
    first = page.locator("#analogy-results tbody tr").first.locator(".cos").all_inner_texts()
    cos = dict(zip(headers, map(float, first), strict=True))
    assert cos["cos(·, +king)"] > cos["cos(·, −man)"]  # queen: nearer king than man
    assert "queen" in page.inner_text("#analogy-summary")
    expect(page.locator("#analogy-error")).to_be_hidden()
    screenshot(page, "analogy", readme=True)


def test_the_temperature_slider_redraws_the_distribution(page: Any) -> None:
    page.goto("/#softmax")
    enter_key(page)
    expect(page.locator("#softmax-bars .bar")).to_have_count(4)
    at_one = probs(page)
    assert page.inner_text("#softmax-t") == "1.00"
    assert [round(p, 2) for p in at_one[:3]] == [0.64, 0.23, 0.1]  # softmax(2, 1, 0.1, -1)
    expect(page.locator("#softmax-error")).to_be_hidden()
    screenshot(page, "softmax", readme=True)

    page.fill("#softmax-temperature", "5")  # T = 0.068: nearly every vote to the top score
    expect(page.locator("#softmax-bars")).to_have_attribute("data-temperature", "0.0676")
    cold = probs(page)
    assert cold[0] > 0.99 and sum(cold) == pytest.approx(1.0)
    page.fill("#softmax-temperature", "95")  # T = 14.8: votes spread nearly evenly
    expect(page.locator("#softmax-bars")).to_have_attribute("data-temperature", "14.7911")
    hot = probs(page)
    assert max(hot) - min(hot) < 0.1 and sum(hot) == pytest.approx(1.0)
    heights = page.locator("#softmax-bars .bar").evaluate_all(
        "bs => bs.map(b => b.getBoundingClientRect().height)"
    )
    assert [h / heights[0] for h in heights] == pytest.approx(  # drawn as it says
        [p / hot[0] for p in hot], rel=0.03
    )
    expect(page.locator("#softmax-error")).to_be_hidden()
    screenshot(page, "softmax-hot")


def test_the_similarity_heatmap_of_four_sentences(page: Any) -> None:
    page.goto("/#similarity")
    enter_key(page)
    expect(page.locator("#similarity-heatmap td")).to_have_count(16)
    cells = page.locator("#similarity-heatmap td").all_inner_texts()
    m = [[float(c) for c in cells[i : i + 4]] for i in range(0, 16, 4)]
    assert all(m[i][i] == 1.0 for i in range(4))
    assert m[0][1] > m[0][2] and m[2][3] > m[2][1]  # cat ~ kitten, market ~ shares
    expect(page.locator("#similarity-error")).to_be_hidden()
    screenshot(page, "similarity", readme=True)


def test_the_attention_heatmap_of_a_sentence(page: Any) -> None:
    page.goto("/#attention")
    enter_key(page)
    page.fill("#attention-text", "the cat sat on the mat")
    page.click("#attention-form button")
    expect(page.locator("#attention-heatmap .scale")).to_contain_text("over 8 tokens")
    # [CLS] the cat sat on the mat [SEP]
    rows = page.locator("#attention-heatmap tbody th").all_inner_texts()
    assert rows[1:7] == ["the", "cat", "sat", "on", "the", "mat"]
    first = [
        float(c)
        for c in page.locator("#attention-heatmap tbody tr").first.locator("td").all_inner_texts()
    ]
    assert sum(first) == pytest.approx(1.0, abs=0.02)  # a row of softmax weights
    expect(page.locator("#attention-error")).to_be_hidden()
    screenshot(page, "attention", readme=True)


def test_descent_draws_every_optimizer_over_the_same_surface_as_primer_math(page: Any) -> None:
    page.goto("/#descent")
    enter_key(page)
    expect(page.locator("#descent-legend tbody tr")).to_have_count(4)
    expect(page.locator("#descent-plot")).to_have_attribute("src", re.compile("^blob:"))
    page.locator("#descent-plot").evaluate("img => img.decode()")  # the PNG loaded
    optimizers = page.locator("#descent-legend tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.optimizer)"
    )
    assert optimizers == ["sgd", "momentum", "adam", "adamw"]
    painted = page.evaluate(
        """() => {
        const c = document.querySelector('#descent-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const colours = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) {
            colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
        }
        return colours.size;
    }"""
    )
    assert painted > 10  # a shaded surface and paths, not a blank canvas
    for name, s in SURFACES.items():  # the page's landscapes are primer_math's
        js = page.evaluate(
            "([n, pts]) => ({f: pts.map(([x, y]) => vpSurfaces[n].f(x, y)),"
            " window: vpSurfaces[n].window, minimum: vpSurfaces[n].minimum})",
            [name, [[0.3, -0.7], [-1.2, 1.0], [1.5, 2.0]]],
        )
        expected = [float(s.f([x, y])) for x, y in ([0.3, -0.7], [-1.2, 1.0], [1.5, 2.0])]
        assert js["f"] == pytest.approx(expected)
        assert js["window"] == list(s.window) and js["minimum"] == pytest.approx(s.minimum)
    expect(page.locator("#descent-error")).to_be_hidden()
    screenshot(page, "descent", readme=True)
