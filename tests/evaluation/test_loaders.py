"""The file formats, on tiny files written here: what is read, and what is refused (with the
file and line named)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from indexer.evaluation.loaders import (
    DatasetError,
    load_analogies,
    load_beir,
    load_sts,
    load_word_pairs,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- STS --------------------------------------------------------------------------------------
STSB = (
    "main-captions\tMSRvid\t2012test\t0000\t5.000\tA man plays a flute.\tA man plays a flute.\n"
    'main-news\theadlines\t2013\t0001\t0.500\tHe said "no.\tThe cat sat.\n'  # quotes are text
    "main-forums\tdeft\t2014\t0002\t2.750\tOne\tTwo\textra column\tanother\n"
)


def test_sts_benchmark_lines_with_quotes_and_extra_columns(tmp_path: Path) -> None:
    pairs = load_sts(write(tmp_path / "sts.csv", STSB))
    assert pairs.format == "stsb"
    assert pairs.gold == [5.0, 0.5, 2.75]
    assert pairs.left == ["A man plays a flute.", 'He said "no.', "One"]
    assert pairs.right == ["A man plays a flute.", "The cat sat.", "Two"]


def test_sts_simple_tsv_with_header(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.tsv", "s1\ts2\tscore\na cat\ta kitten\t4.5\n\nup\tdown\t0\n")
    pairs = load_sts(path)
    assert (pairs.format, pairs.left, pairs.right, pairs.gold) == (
        "tsv",
        ["a cat", "up"],
        ["a kitten", "down"],
        [4.5, 0.0],
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a\tb\t1\nc\td\tnot-a-number\n", 2),
        ("a\tb\t1\nc\td\n", 2),
        (STSB + "main\tx\t2012\t1\t3.0\tonly one sentence\n", 4),
        ("just one column\n", 1),
    ],
)
def test_sts_refuses_bad_lines_naming_them(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(DatasetError, match=f"bad.tsv:{line}:"):
        load_sts(path)


def test_sts_sample_is_reproducible(tmp_path: Path) -> None:
    rows = "".join(f"s{i}\tt{i}\t{i}\n" for i in range(50))
    pairs = load_sts(write(tmp_path / "p.tsv", rows))
    a, b = pairs.sample(10, seed=3), pairs.sample(10, seed=3)
    assert a.left == b.left and len(a) == 10
    assert all(f"s{int(g)}" == s for s, g in zip(a.left, a.gold, strict=True))
    assert pairs.sample(None) is pairs


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_sts(tmp_path / "nope.csv")


# ---- word pairs -------------------------------------------------------------------------------
def test_men_with_header_and_tsv(tmp_path: Path) -> None:
    men = load_word_pairs(write(tmp_path / "men", "word1 word2 score\nsun sunlight 50.000000\n"))
    assert (men.left, men.right, men.gold) == (["sun"], ["sunlight"], [50.0])
    tsv = load_word_pairs(write(tmp_path / "ws.tsv", "tiger\tcat\t7.35\nbook\tpaper\t7.46\n"))
    assert tsv.left == ["tiger", "book"] and tsv.gold == [7.35, 7.46]
    with pytest.raises(DatasetError, match=r"ws2\.tsv:2:"):
        load_word_pairs(write(tmp_path / "ws2.tsv", "a b 1\nc d\n"))


# ---- BEIR -------------------------------------------------------------------------------------
def beir(folder: Path, gz: bool = True) -> Path:
    docs = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr."},
        {"_id": "d2", "title": "", "text": "Dogs bark."},
        {"_id": "d3", "title": "", "text": "  "},  # empty: left out
        {"_id": "d4", "title": "Sun", "text": "The sun is a star.", "metadata": {}},
    ]
    lines = "".join(json.dumps(d) + "\n" for d in docs)
    folder.mkdir(parents=True)
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write(lines)
    else:
        write(folder / "corpus.jsonl", lines)
    queries = [{"_id": "q1", "text": "what purrs"}, {"_id": "q2", "text": "barking"}]
    queries += [{"_id": "q3", "text": "unjudged"}, {"_id": "q4", "text": "only non-relevant"}]
    write(folder / "queries.jsonl", "".join(json.dumps(q) + "\n" for q in queries))
    write(
        folder / "qrels" / "train.tsv",
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td4\t0\nq4\td4\t0\n",
    )
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_beir_folder(tmp_path: Path, gz: bool) -> None:
    data = load_beir(beir(tmp_path / "tiny", gz), split="train")
    assert data.name == "tiny"
    assert data.corpus == {
        "d1": "Cats Cats purr.",
        "d2": "Dogs bark.",
        "d4": "Sun The sun is a star.",
    }
    assert data.queries == {"q1": "what purrs", "q2": "barking"}  # q3 unjudged, q4 no relevant
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d4": 0}}
    assert data.skipped == {"empty documents": 1, "queries without relevant documents": 1}


def test_beir_unknown_split_lists_the_ones_there(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"available: train") as e:
        load_beir(beir(tmp_path / "tiny"), split="test")
    assert e.value.field == "split"


def test_beir_sample_keeps_judged_documents(tmp_path: Path) -> None:
    data = load_beir(beir(tmp_path / "tiny"), split="train")
    small = data.sample(1, 0, seed=1)
    (qid,) = small.queries
    assert set(small.corpus) == set(data.qrels[qid]) & set(data.corpus)


# ---- analogies --------------------------------------------------------------------------------
GOOGLE = """: capital-common-countries
Athens Greece Baghdad Iraq
Athens Greece Berlin Germany
: gram1-adjective-to-adverb
calm calmly quick quickly
"""


def test_google_format(tmp_path: Path) -> None:
    aset = load_analogies(write(tmp_path / "questions-words.txt", GOOGLE))
    assert aset.format == "google" and len(aset) == 3
    assert aset.sections == ["capital-common-countries", "gram1-adjective-to-adverb"]
    assert aset.groups == ["semantic", "syntactic"]
    assert aset.words(0) == ("athens", "greece", "baghdad", ["iraq"])  # lower-cased, as gensim
    assert aset.section_of.tolist() == [0, 0, 1]
    assert len(aset.vocab) == 10 and aset.vocab == sorted(aset.vocab)
    with pytest.raises(DatasetError, match=r"bad\.txt:2:"):
        load_analogies(write(tmp_path / "bad.txt", ": s\na b c\n"))


def test_bats_every_ordered_pair_of_pairs_first_target_as_a_star(tmp_path: Path) -> None:
    write(
        tmp_path / "bats" / "1_inflectional" / "I01 [noun - plural].txt",
        "cat\tcats\nox\toxen/oxes\nman\tmen",
    )
    write(
        tmp_path / "bats" / "3_encyclopedic" / "E01 [country - capital].txt",
        "france\tparis\nperu\tlima\n",
    )
    aset = load_analogies(tmp_path / "bats")
    assert aset.format == "bats"
    assert aset.sections == ["I01 [noun - plural]", "E01 [country - capital]"]
    assert aset.groups == ["1_inflectional", "3_encyclopedic"]
    assert len(aset) == 3 * 2 + 2 * 1
    questions = {aset.words(i)[:3]: aset.words(i)[3] for i in range(len(aset))}
    assert questions[("cat", "cats", "ox")] == ["oxen", "oxes"]  # every target is valid
    assert questions[("ox", "oxen", "man")] == ["men"]  # a* is the first target
    assert ("ox", "oxes", "cat") not in questions
    assert ("cat", "cats", "cat") not in questions  # a pair with itself is no question
    assert set(aset.vocab) == {
        "cat",
        "cats",
        "ox",
        "oxen",
        "oxes",
        "man",
        "men",
        "france",
        "paris",
        "peru",
        "lima",
    }

    only = aset.only(["E01"])
    assert len(only) == 2 and only.vocab == ["france", "lima", "paris", "peru"]
    assert only.groups == ["3_encyclopedic"] and set(only.section_of.tolist()) == {0}
    with pytest.raises(DatasetError, match="no section starts with X"):
        aset.only(["X"])

    sample = aset.sample(3, seed=0)
    assert len(sample) == 3 and sample.vocab == aset.vocab
    assert np.all(np.isin(sample.section_of, [0, 1]))


def test_bats_refuses_a_line_without_targets(tmp_path: Path) -> None:
    write(tmp_path / "b" / "g" / "r.txt", "cat\tcats\ndog\n")
    with pytest.raises(DatasetError, match=r"r.txt:2:"):
        load_analogies(tmp_path / "b")
    with pytest.raises(DatasetError, match="no BATS relation files"):
        load_analogies(tmp_path / "b" / "g")
