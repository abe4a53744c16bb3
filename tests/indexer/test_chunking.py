"""split_passages: a hand-worked case, properties over random unicode text with a word tokenizer,
and the real all-MiniLM-L6-v2 tokenizer, whose edges are where a cut can go wrong."""

import itertools
import re
import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.chunking import Passage, sentence_starts, split_passages
from indexer.embed import load_embedder

Tokenize = Callable[[str], list[tuple[int, int]]]


def words(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\w+", text)]


def check(text: str, tokenize: Tokenize, max_tokens: int, overlap: int) -> list[Passage]:
    """The invariants every split keeps; returns the passages for further checks."""
    passages = split_passages(text, tokenize, max_tokens, overlap)
    spans = tokenize(text)
    for p in passages:
        assert p.text == text[p.start : p.end]
        assert p.tokens == len(tokenize(p.text)) <= max_tokens
    starts = [p.start for p in passages]
    assert starts == sorted(set(starts))  # in order, each one new
    # every token of the text lies inside some passage: nothing is lost
    for a, b in spans:
        assert any(p.start <= a and b <= p.end for p in passages), text[a:b]
    # consecutive passages share at most `overlap` of the text's tokens
    for prev, nxt in itertools.pairwise(passages):
        shared = [s for s in spans if nxt.start <= s[0] and s[1] <= prev.end]
        assert len(shared) <= overlap
    return passages


# ---- the rules, by hand -----------------------------------------------------------------------
def test_sentences_are_packed_and_the_trailing_sentence_repeats() -> None:
    text = "a b c. d e f. g h i. j k l."
    passages = check(text, words, max_tokens=7, overlap=3)
    assert [p.text for p in passages] == ["a b c. d e f.", "d e f. g h i.", "g h i. j k l."]
    assert [p.tokens for p in passages] == [6, 6, 6]


def test_a_long_sentence_is_cut_between_words_with_trailing_tokens_shared() -> None:
    text = " ".join(f"w{i}" for i in range(20))
    passages = check(text, words, max_tokens=8, overlap=2)
    assert [p.text.split() for p in passages] == [
        [f"w{i}" for i in range(0, 8)],
        [f"w{i}" for i in range(6, 14)],
        [f"w{i}" for i in range(12, 20)],
    ]


def test_no_overlap_means_passages_tile_the_text() -> None:
    text = "One two three. Four five six. Seven eight nine. Ten."
    passages = check(text, words, max_tokens=4, overlap=0)
    assert [p.text for p in passages] == [
        "One two three.",
        "Four five six.",
        "Seven eight nine. Ten.",
    ]
    assert passages[1].start == passages[0].end + 1


def test_a_text_that_fits_is_one_passage_equal_to_the_whole_text() -> None:
    text = "  Short text.\n\nWith two paragraphs.  "
    assert split_passages(text, words, 8, 2) == [Passage(text, 0, len(text), 5)]


@pytest.mark.parametrize("text", ["", "   ", "\n\t\n", "!!! ...", "\u200b"])
def test_a_text_without_tokens_gives_no_passage(text: str) -> None:
    assert split_passages(text, words, 8, 2) == []


def test_whitespace_around_a_split_text_is_left_out() -> None:
    passages = check("\n  a b. c d.  \n", words, max_tokens=2, overlap=0)
    assert [p.text for p in passages] == ["a b.", "c d."]


@pytest.mark.parametrize("max_tokens, overlap", [(0, 0), (4, 4), (4, -1)])
def test_a_budget_that_cannot_make_progress_is_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        split_passages("a b c", words, max_tokens, overlap)


def test_sentence_ends_in_several_scripts() -> None:
    text = "Hi there. “Quoted!” Next\n\nPara 東京です。大阪です。 سلام؟ بعد"
    ends = [text[s : s + 4] for s in sentence_starts(text)]
    assert ends == ["Hi t", "“Quo", "Next", "Para", "大阪です", "سلام", "بعد"]


# ---- properties over random unicode ------------------------------------------------------------
PIECES = [
    "word", "café", "e\u0301cole", "naïve", "東京", "日本語", "👍", "👨\u200d👩\u200d👧",
    "שלום", "مرحبا", "x", "42", ".", "!", "?", "。", "؟", " ", " ", "  ", "\n", "\n\n",
]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=120).map("".join),
    st.integers(1, 12),
    st.integers(0, 11),
)
def test_random_texts_keep_every_invariant(text: str, max_tokens: int, overlap: int) -> None:
    overlap = min(overlap, max_tokens - 1)
    passages = check(text, words, max_tokens, overlap)
    for p in passages:  # a cut never separates a mark or a joiner from what it belongs to
        for edge in (p.start, p.end):
            if 0 < edge < len(text):
                assert not unicodedata.combining(text[edge]) and text[edge] != "\u200d"


# ---- the real tokenizer ------------------------------------------------------------------------
MIXED = (
    "The café served crème brûlée to a naïve e\u0301tudiant. "
    "Unbelievably, antidisestablishmentarianism returned!  "
    "東京は日本の首都です。大阪は二番目に大きな都市です。"
    "We cheered 🎉🎉 and the family 👨\u200d👩\u200d👧 waved 👍🏽. "
    "שלום עולם. مرحبا بالعالم؟ "
    "https://example.com/a/very/long/path?with=query&and=more#fragment "
)


@pytest.mark.model
@pytest.mark.parametrize("max_tokens, overlap", [(254, 32), (40, 8), (9, 3), (3, 1)])
def test_the_model_tokenizer_never_gets_a_passage_over_its_budget(
    max_tokens: int, overlap: int
) -> None:
    emb = load_embedder("all-MiniLM-L6-v2")
    text = MIXED * 12
    assert len(emb.token_spans(text)) > 254  # the model would truncate it whole
    passages = check(text, emb.token_spans, max_tokens, overlap)
    assert len(passages) > 1
    for p in passages:
        assert emb.count_tokens(p.text) - 2 <= emb.max_tokens  # what the model really sees
        for edge in (p.start, p.end):
            if 0 < edge < len(text):
                assert (
                    not unicodedata.combining(text[edge]) and text[edge] not in "\u200d\U0001f3fd"
                )


@pytest.mark.model
def test_the_model_tokenizer_sees_a_short_text_as_one_passage() -> None:
    emb = load_embedder("all-MiniLM-L6-v2")
    assert emb.max_tokens == 254
    [p] = split_passages(MIXED, emb.token_spans, emb.max_tokens, 32)
    assert (p.text, p.tokens) == (MIXED, len(emb.token_spans(MIXED)))


def test_the_hash_embedder_counts_words() -> None:
    emb = load_embedder("hash-16")
    assert emb.token_spans("Ünïcode words, 42!") == [(0, 7), (8, 13), (15, 17)]  # type: ignore[attr-defined]
    assert emb.max_tokens == 256  # type: ignore[attr-defined]
