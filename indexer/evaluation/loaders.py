"""Readers for the evaluation file formats. Each names the file and line of anything it refuses.

- STS: the STS Benchmark csv (tab-separated, no quoting: genre, file, year, id, score, sentence1,
  sentence2, sometimes 2 extra trailing columns) or a simple TSV `s1<TAB>s2<TAB>score`.
- Retrieval: a BEIR folder: `corpus.jsonl[.gz]` (`_id`, `title`, `text`; the document is
  `title + " " + text`, stripped, as BEIR and MTEB embed it), `queries.jsonl` (`_id`, `text`),
  `qrels/<split>.tsv` (header, then `query-id corpus-id score`).
- Analogy: Google `questions-words.txt` (`: section`, then `a b c d`: a is to b as c is to d) or a
  BATS 3.0 folder (group folders of relation files with `word<TAB>target1/target2/...`; every
  ordered pair of distinct pairs (a, a*), (b, b*) of a relation is the question a : a*[0] :: b : ?
  with answers b*).
- Word similarity: `w1 w2 score` (MEN; spaces or tabs) with an optional header line.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from ..errors import InvalidInput


class DatasetError(InvalidInput):
    """An evaluation file is missing or not in the format its task reads."""

    code = "bad_dataset"


def _open(path: Path) -> IO[str]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file", field="path")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its newline) of the non-blank lines."""
    with _open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield n, line


def _float(s: str) -> float | None:
    try:
        v = float(s)
    except ValueError:
        return None
    return v if np.isfinite(v) else None


# ---- STS --------------------------------------------------------------------------------------
@dataclass
class SentencePairs:
    """Sentence pairs with gold similarity scores."""

    left: list[str]
    right: list[str]
    gold: list[float]
    format: str  # "stsb" or "tsv"

    def __len__(self) -> int:
        return len(self.gold)

    def sample(self, n: int | None, seed: int = 0) -> SentencePairs:
        """`n` pairs drawn without replacement (all of them if n is None or too large)."""
        if n is None or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return SentencePairs(
            [self.left[i] for i in keep],
            [self.right[i] for i in keep],
            [self.gold[i] for i in keep],
            self.format,
        )


def load_sts(path: str | Path) -> SentencePairs:
    """STS Benchmark csv or `s1<TAB>s2<TAB>score` TSV, told apart by the first data line."""
    path = Path(path)
    pairs = SentencePairs([], [], [], "")
    for n, line in _lines(path):
        cols = line.split("\t")
        if not pairs.format:
            if len(cols) >= 7 and _float(cols[4]) is not None:
                pairs.format = "stsb"
            elif len(cols) == 3 and _float(cols[2]) is not None:
                pairs.format = "tsv"
            elif n == 1 and len(cols) in (3, 7, 9):
                continue  # a header line
            else:
                raise DatasetError(
                    f"{path}:{n}: neither STS Benchmark (score in column 5, sentences in 6 and "
                    f"7, tab-separated) nor 's1<TAB>s2<TAB>score' ({len(cols)} columns)",
                    field="path",
                )
        if pairs.format == "stsb":
            score = _float(cols[4]) if len(cols) >= 7 else None
            s1, s2 = (cols[5], cols[6]) if len(cols) >= 7 else ("", "")
        else:
            score = _float(cols[2]) if len(cols) == 3 else None
            s1, s2 = (cols[0], cols[1]) if len(cols) == 3 else ("", "")
        if score is None or not s1.strip() or not s2.strip():
            raise DatasetError(
                f"{path}:{n}: expected two non-empty sentences and a numeric score "
                f"({pairs.format} format, {len(cols)} columns)",
                field="path",
            )
        pairs.left.append(s1)
        pairs.right.append(s2)
        pairs.gold.append(score)
    if not pairs.gold:
        raise DatasetError(f"{path}: no sentence pairs", field="path")
    return pairs


# ---- word pairs -------------------------------------------------------------------------------
@dataclass
class WordPairs:
    left: list[str]
    right: list[str]
    gold: list[float]

    def __len__(self) -> int:
        return len(self.gold)

    def sample(self, n: int | None, seed: int = 0) -> WordPairs:
        if n is None or n >= len(self):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self)), n))
        return WordPairs(
            [self.left[i] for i in keep],
            [self.right[i] for i in keep],
            [self.gold[i] for i in keep],
        )


def load_word_pairs(path: str | Path) -> WordPairs:
    """MEN (`w1 w2 score`, space-separated, header `word1 word2 score`) or `w1<TAB>w2<TAB>score`."""
    path = Path(path)
    out = WordPairs([], [], [])
    for n, line in _lines(path):
        cols = line.split("\t") if "\t" in line else line.split()
        score = _float(cols[2]) if len(cols) >= 3 else None
        if score is None and n == 1 and len(cols) >= 3:
            continue  # header
        if score is None or not cols[0].strip() or not cols[1].strip():
            raise DatasetError(
                f"{path}:{n}: expected 'word1 word2 score' ({len(cols)} columns)", field="path"
            )
        out.left.append(cols[0].strip())
        out.right.append(cols[1].strip())
        out.gold.append(score)
    if not out.gold:
        raise DatasetError(f"{path}: no word pairs", field="path")
    return out


# ---- BEIR -------------------------------------------------------------------------------------
@dataclass
class RetrievalSet:
    """A corpus, the queries that have judged relevant documents, and their qrels."""

    name: str
    corpus: dict[str, str]  # doc id -> title + " " + text
    queries: dict[str, str]  # query id -> text (only queries with a relevant document)
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> grade
    skipped: dict[str, int] = field(default_factory=dict)  # what was left out, and why

    def sample(self, n_queries: int | None, distractors: int | None, seed: int = 0) -> RetrievalSet:
        """A smaller set that keeps its meaning: `n_queries` queries, every document judged for
        them, plus `distractors` other documents (all others when None)."""
        rng = random.Random(seed)
        qids = sorted(self.queries)
        if n_queries is not None and n_queries < len(qids):
            qids = sorted(rng.sample(qids, n_queries))
        judged = {d for q in qids for d in self.qrels[q] if d in self.corpus}
        others = sorted(set(self.corpus) - judged)
        if distractors is not None and distractors < len(others):
            others = rng.sample(others, distractors)
        keep = judged | set(others)
        return RetrievalSet(
            self.name,
            {d: t for d, t in self.corpus.items() if d in keep},
            {q: self.queries[q] for q in qids},
            {q: self.qrels[q] for q in qids},
            dict(self.skipped),
        )


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    for n, line in _lines(path):
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise DatasetError(f"{path}:{n}: not JSON: {e}", field="path") from None
        if not isinstance(obj, dict) or "_id" not in obj:
            raise DatasetError(f"{path}:{n}: expected an object with '_id'", field="path")
        yield n, obj


def load_beir(folder: str | Path, split: str = "test") -> RetrievalSet:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a BEIR folder (no such directory)", field="path")
    corpus_path = next(
        (p for p in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if p.is_file()), None
    )
    if corpus_path is None:
        raise DatasetError(f"{folder}: no corpus.jsonl or corpus.jsonl.gz", field="path")
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
        raise DatasetError(
            f"{qrels_path}: no such split (available: {', '.join(have) or 'none'})",
            field="split",
        )
    skipped = {"empty documents": 0, "queries without relevant documents": 0}
    corpus: dict[str, str] = {}
    for _, obj in _jsonl(corpus_path):
        text = f"{obj.get('title') or ''} {obj.get('text') or ''}".strip()
        if text:
            corpus[str(obj["_id"])] = text
        else:
            skipped["empty documents"] += 1
    all_queries = {
        str(obj["_id"]): str(obj.get("text") or "") for _, obj in _jsonl(folder / "queries.jsonl")
    }
    qrels: dict[str, dict[str, int]] = {}
    for n, line in _lines(qrels_path):
        cols = line.split("\t")
        grade = _float(cols[-1]) if len(cols) >= 3 else None
        if grade is None:
            if n == 1:
                continue  # header: query-id corpus-id score
            raise DatasetError(
                f"{qrels_path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score'", field="path"
            )
        qrels.setdefault(cols[0], {})[cols[1]] = int(grade)
    queries: dict[str, str] = {}
    for qid in sorted(qrels):
        if (
            qid in all_queries
            and all_queries[qid].strip()
            and any(g > 0 for g in qrels[qid].values())
        ):
            queries[qid] = all_queries[qid]
        else:
            skipped["queries without relevant documents"] += 1
    qrels = {q: qrels[q] for q in queries}
    if not queries:
        raise DatasetError(f"{qrels_path}: no query with a relevant document", field="path")
    return RetrievalSet(folder.name, corpus, queries, qrels, skipped)


# ---- analogies --------------------------------------------------------------------------------
@dataclass
class AnalogySet:
    """Questions "a is to a* as b is to ?" as indices into one candidate vocabulary."""

    vocab: list[str]  # every word of the test set, sorted: the candidates
    questions: NDArray[np.int64]  # (n, 3): a, a*, b
    targets: list[frozenset[int]]  # (n,) the valid answers of each question
    section_of: NDArray[np.int64]  # (n,) index into sections
    sections: list[str]  # relation / section names
    groups: list[str]  # (len(sections),) the group each section belongs to
    format: str  # "google" or "bats"

    def __len__(self) -> int:
        return len(self.targets)

    def sample(self, n: int | None, seed: int = 0) -> AnalogySet:
        """`n` questions drawn without replacement; the vocabulary stays the whole test set's."""
        if n is None or n >= len(self):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))
        return AnalogySet(
            self.vocab,
            self.questions[keep],
            [self.targets[i] for i in keep],
            self.section_of[keep],
            self.sections,
            self.groups,
            self.format,
        )

    def only(self, prefixes: list[str]) -> AnalogySet:
        """The questions of the sections whose names start with one of `prefixes`; the
        vocabulary becomes the words of those sections (they are the test set now)."""
        chosen = [i for i, s in enumerate(self.sections) if any(s.startswith(p) for p in prefixes)]
        if not chosen:
            raise DatasetError(
                f"no section starts with {', '.join(prefixes)} (have: {', '.join(self.sections)})",
                field="sections",
            )
        renumber = {old: new for new, old in enumerate(chosen)}
        questions = [
            _Question(renumber[int(self.section_of[i])], *self.words(i))
            for i in range(len(self))
            if int(self.section_of[i]) in renumber
        ]
        return _build(
            questions,
            [self.sections[i] for i in chosen],
            [self.groups[i] for i in chosen],
            self.format,
        )

    def words(self, i: int) -> tuple[str, str, str, list[str]]:
        """Question i as words: (a, a*, b, sorted targets)."""
        a, a_star, b = (self.vocab[j] for j in self.questions[i])
        return a, a_star, b, sorted(self.vocab[j] for j in self.targets[i])


@dataclass
class _Question:
    section: int
    a: str
    a_star: str
    b: str
    targets: list[str]


def _build(
    questions: list[_Question], sections: list[str], groups: list[str], fmt: str
) -> AnalogySet:
    vocab = sorted({w for q in questions for w in (q.a, q.a_star, q.b, *q.targets)})
    index = {w: i for i, w in enumerate(vocab)}
    return AnalogySet(
        vocab,
        np.array(
            [[index[q.a], index[q.a_star], index[q.b]] for q in questions], dtype=np.int64
        ).reshape(-1, 3),
        [frozenset(index[t] for t in q.targets) for q in questions],
        np.array([q.section for q in questions], dtype=np.int64),
        sections,
        groups,
        fmt,
    )


def load_google(path: str | Path, lowercase: bool = True) -> AnalogySet:
    """`: section` lines, then `a b c d`. Lower-cased like gensim's evaluator by default."""
    path = Path(path)
    questions: list[_Question] = []
    sections: list[str] = []
    for n, line in _lines(path):
        if line.startswith(":"):
            sections.append(line[1:].strip() or f"section {len(sections) + 1}")
            continue
        words = line.lower().split() if lowercase else line.split()
        if len(words) != 4:
            raise DatasetError(f"{path}:{n}: expected 4 words 'a b c d'", field="path")
        if not sections:
            sections.append("all")
        a, a_star, b, d = words
        questions.append(_Question(len(sections) - 1, a, a_star, b, [d]))
    if not questions:
        raise DatasetError(f"{path}: no analogy questions", field="path")
    # gensim's convention: the `gram*` sections are syntactic, the others semantic
    groups = ["syntactic" if s.startswith("gram") else "semantic" for s in sections]
    return _build(questions, sections, groups, "google")


def load_bats(folder: str | Path) -> AnalogySet:
    """A BATS 3.0 folder: `<group>/<relation>.txt`, one `word<TAB>t1/t2/...` pair a line."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*/*.txt") if p.is_file())
    if not files:
        raise DatasetError(
            f"{folder}: no BATS relation files (<group>/<relation>.txt)", field="path"
        )
    questions: list[_Question] = []
    sections: list[str] = []
    groups: list[str] = []
    for path in files:
        pairs: list[tuple[str, list[str]]] = []
        for n, line in _lines(path):
            cols = line.split("\t") if "\t" in line else line.split()
            targets = [t.strip() for t in cols[1].split("/") if t.strip()] if len(cols) == 2 else []
            if not targets or not cols[0].strip():
                raise DatasetError(f"{path}:{n}: expected 'word<TAB>target1/target2'", field="path")
            pairs.append((cols[0].strip(), targets))
        section = len(sections)
        sections.append(path.stem)
        groups.append(path.parent.name)
        for i, (a, a_targets) in enumerate(pairs):
            for j, (b, b_targets) in enumerate(pairs):
                if i != j:
                    questions.append(_Question(section, a, a_targets[0], b, b_targets))
    return _build(questions, sections, groups, "bats")


def load_analogies(path: str | Path) -> AnalogySet:
    """A BATS folder or a Google-format file."""
    path = Path(path)
    if path.is_dir():
        return load_bats(path)
    return load_google(path)
