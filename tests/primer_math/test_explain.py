"""explain.py: every topic complete, aliases resolve, unknown topics refused, numbers true."""

import json
import re

import numpy as np
import pytest

from primer_math.explain import ALIASES, TOPICS, UnknownTopic, explain, resolve_topic
from primer_math.softmax import softmax


@pytest.mark.parametrize("topic", list(TOPICS))
def test_every_topic_has_title_intuition_formula_and_llm_meaning(topic: str) -> None:
    e = explain(topic)
    assert e.topic == topic
    assert all(len(text) > 40 for text in (e.intuition, e.for_llm_apps))
    assert e.title and e.formula and e.try_it
    assert json.loads(json.dumps(e.as_dict()))["title"] == e.title
    assert e.title in e.as_text() and "For an LLM app:" in e.as_text()


def test_the_four_intuitions_are_all_there() -> None:
    assert {"vectors", "softmax", "attention", "descent"} <= set(TOPICS)


@pytest.mark.parametrize(
    ("alias", "topic"),
    [("geometry", "vectors"), ("Embeddings", "vectors"), ("temperature", "softmax"),
     ("top_p", "softmax"), ("self attention", "attention"), ("adamw", "descent"),
     ("cross-entropy", "loss")],
)  # fmt: skip
def test_aliases_resolve(alias: str, topic: str) -> None:
    assert explain(alias) is TOPICS[topic]


def test_every_alias_points_at_a_topic() -> None:
    assert set(ALIASES.values()) <= set(TOPICS)


def test_unknown_topic_names_the_known_ones() -> None:
    assert resolve_topic("astrology") is None
    with pytest.raises(UnknownTopic, match="known: vectors, softmax"):
        explain("astrology")
    with pytest.raises(KeyError):
        explain("")


def test_the_worked_example_in_the_softmax_text_is_what_the_code_computes() -> None:
    text = explain("softmax").intuition
    quoted = re.search(r"give \[([\d., ]+)\]", text)
    assert quoted is not None
    stated = [float(x) for x in quoted.group(1).split(",")]
    np.testing.assert_allclose(stated, softmax([2.0, 1.0, 0.1]).round(2))
