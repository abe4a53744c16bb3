"""The four evaluations, each written once over a `Backend` (the engine, or a service over HTTP).

from indexer import Engine, Settings
from indexer.evaluation import evaluate_sts
result = evaluate_sts("../shared/data/stsbenchmark/sts-test.csv", Engine(Settings()))
print(result.table())
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import Engine
from . import metrics
from .analogy import METHODS, top_candidates
from .backend import MODES, Backend, EngineBackend, Mode, Retrieved
from .loaders import load_analogies, load_beir, load_sts, load_word_pairs
from .report import EvalResult

# Figures others published for all-MiniLM-L6-v2, keyed by (task, file or folder name).
PUBLISHED: dict[tuple[str, str], tuple[dict[str, float], str]] = {
    ("sts", "sts-test.csv"): ({"spearman": 0.8203}, "MTEB STSBenchmark, test split"),
    ("sts", "sts-dev.csv"): ({"spearman": 0.8672}, "MTEB STSBenchmark, dev split"),
    ("analogy", "bats_3.0"): (
        {"3cosadd": 0.41, "3cosmul": 0.43},
        "a straightforward implementation, all 98,000 questions, 6,208-string vocabulary",
    ),
    ("wordsim", "MEN_dataset_natural_form_full"): ({"spearman": 0.76}, "MEN, 3,000 pairs"),
}
PUBLISHED_EMBEDDER = "all-MiniLM-L6-v2"
MODES_BY_NAME = {m.name: m for m in MODES.values()}


def as_backend(target: Backend | Engine) -> Backend:
    return EngineBackend(target) if isinstance(target, Engine) else target


def _published(task: str, path: Path, embedder: str, scores: dict[str, float]) -> list[str]:
    """A note comparing our headline figures with the published ones, if any apply."""
    entry = PUBLISHED.get((task, path.name))
    if entry is None or embedder != PUBLISHED_EMBEDDER:
        return []
    figures, source = entry
    parts = [
        f"{m} {v:g} published vs {scores[m]:.4f} here ({scores[m] - v:+.4f})"
        for m, v in figures.items()
        if m in scores
    ]
    return [f"published ({source}): " + "; ".join(parts)] if parts else []


# ---- STS --------------------------------------------------------------------------------------
def evaluate_sts(
    path: str | Path, target: Backend | Engine, limit: int | None = None, seed: int = 0
) -> EvalResult:
    """Spearman and Pearson of the cosine of each sentence pair against the gold scores."""
    backend, path = as_backend(target), Path(path)
    t0 = time.perf_counter()
    full = load_sts(path)
    pairs = full.sample(limit, seed)
    cos = backend.pair_cosines(pairs.left, pairs.right)
    scores, notes = _correlations("sts", path, backend.embedder, cos, pairs, len(full), seed)
    return EvalResult(
        task="sts",
        dataset=str(path),
        via=backend.via,
        embedder=backend.embedder,
        size={"pairs": len(pairs)},
        scores=scores,
        columns=["file", "pairs", "spearman", "pearson"],
        rows=[{"file": path.name, "pairs": len(pairs), **scores}],
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


def _correlations(
    task: str, path: Path, embedder: str, cos: Any, pairs: Any, n_full: int, seed: int
) -> tuple[dict[str, float], list[str]]:
    """Spearman and Pearson of `cos` against the pairs' gold scores, with a note when the pairs
    are a sample and the published figure when they are the whole file."""
    scores = {
        "spearman": metrics.spearman(cos, pairs.gold),
        "pearson": metrics.pearson(cos, pairs.gold),
    }
    if len(pairs) < n_full:
        return scores, [f"a sample of {len(pairs)} of {n_full} pairs (seed {seed})"]
    return scores, _published(task, path, embedder, scores)


# ---- word similarity --------------------------------------------------------------------------
def evaluate_wordsim(
    path: str | Path, target: Backend | Engine, limit: int | None = None, seed: int = 0
) -> EvalResult:
    """Spearman (and Pearson) of the cosine of each word pair's vectors against human scores."""
    backend, path = as_backend(target), Path(path)
    t0 = time.perf_counter()
    full = load_word_pairs(path)
    pairs = full.sample(limit, seed)
    vocab = sorted(set(pairs.left) | set(pairs.right))
    row = {w: i for i, w in enumerate(vocab)}
    U = backend.word_vectors(vocab)  # (V, d) unit
    cos = np.einsum(
        "nd,nd->n", U[[row[w] for w in pairs.left]], U[[row[w] for w in pairs.right]]
    ).astype(np.float64)
    scores, notes = _correlations("wordsim", path, backend.embedder, cos, pairs, len(full), seed)
    return EvalResult(
        task="wordsim",
        dataset=str(path),
        via=backend.via,
        embedder=backend.embedder,
        size={"pairs": len(pairs), "words": len(vocab)},
        scores=scores,
        columns=["file", "pairs", "words", "spearman", "pearson"],
        rows=[{"file": path.name, "pairs": len(pairs), "words": len(vocab), **scores}],
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


# ---- retrieval --------------------------------------------------------------------------------
def evaluate_retrieval(
    folder: str | Path,
    target: Backend | Engine,
    split: str = "test",
    kinds: list[tuple[str, str]] | None = None,
    k: int = 100,
    params: dict[str, Any] | None = None,
    queries: int | None = None,
    distractors: int | None = None,
    seed: int = 0,
    modes: list[str] | None = None,
) -> EvalResult:
    """Index the corpus once per (metric, index kind), search every query, score the rankings.

    `kinds` defaults to [("cosine", "flat")]; the first is the reference the others are
    compared with (Δ nDCG@10). `modes` (names of `MODES`, default just "vector") adds a row per
    search mode on the reference collection: keyword (BM25), hybrid RRF or convex fusion, and
    chunked (passages, one hit per document); each row also gives its nDCG@10 minus that of the
    best single mode (vector or keyword on whole documents). Modes other than vector are
    engine-only for now. `queries` / `distractors` take a sample: that many queries, all their
    judged documents, and that many other documents.
    """
    backend, folder = as_backend(target), Path(folder)
    kinds = kinds or [("cosine", "flat")]
    wanted = [MODES[m] for m in modes or ["vector"]]
    extra = [m for m in wanted if m != MODES["vector"]]
    k = max(k, 10)
    t0 = time.perf_counter()
    full = load_beir(folder, split)
    data = full.sample(queries, distractors, seed)
    qids = sorted(data.queries)
    texts = [data.queries[q] for q in qids]
    notes: list[str] = []
    by_mode: list[tuple[Mode, Retrieved]] = []
    rows: list[dict[str, Any]] = []
    corpus_seconds = 0.0

    def row(metric: str, kind: str, mode: Mode, got: Retrieved) -> dict[str, Any]:
        per_query = [
            (
                metrics.ndcg_at_k(ranked, data.qrels[q], 10),
                metrics.recall_at_k(ranked, data.qrels[q], k),
                metrics.reciprocal_rank(ranked, data.qrels[q], 10),
            )
            for q, ranked in zip(qids, got.ranked, strict=True)
        ]
        ndcg, recall, mrr = (float(np.mean(col)) for col in zip(*per_query, strict=True))
        n = len(qids)
        return {
            "metric": metric,
            "index": kind,
            "mode": mode.name,
            "ndcg@10": ndcg,
            "delta": ndcg - rows[0]["ndcg@10"] if rows else 0.0,
            f"recall@{k}": recall,
            "mrr@10": mrr,
            "ms/query": 1000 * (got.search_seconds + got.query_embed_seconds) / n,
            "search ms/query": 1000 * got.search_seconds / n if backend.via == "engine" else None,
            "build s": got.build_seconds if not mode.chunked else None,
            "ann": (got.collection.get("ann") or {}).get("built"),
        }

    runnable = [m for m in extra if backend.supports(m)]
    for i, (metric, kind) in enumerate(kinds):
        if i == 0 and runnable:
            ref, *others = backend.retrieve_modes(
                data.name, data.corpus, texts, metric, kind, params, k, [MODES["vector"], *runnable]
            )
            by_mode = list(zip(runnable, others, strict=True))
        else:
            ref = backend.retrieve(data.name, data.corpus, texts, metric, kind, params, k)
        corpus_seconds += ref.corpus_embed_seconds
        rows.append(row(metric, kind, MODES["vector"], ref))
    passage_seconds = 0.0
    for mode, got in by_mode:
        if mode.chunked:
            passage_seconds += got.corpus_embed_seconds
            if not any(n.startswith("chunked:") for n in notes):
                notes.append(_chunking_note(got.collection, len(data.corpus)))
        else:
            corpus_seconds += got.corpus_embed_seconds
        metric, kind = ("cosine", "flat") if mode.chunked else kinds[0]
        rows.append(row(metric, kind, mode, got))
    singles = [r for r in rows[:1] + rows[len(kinds) :] if MODES_BY_NAME[r["mode"]].single]
    if by_mode:
        best = max(singles, key=lambda r: r["ndcg@10"])
        for r in rows[:1] + rows[len(kinds) :]:
            r["vs best single"] = r["ndcg@10"] - best["ndcg@10"]
        notes.append(
            f"vs best single = nDCG@10 minus that of the best single mode ({best['mode']})"
        )
    if left_out := [m.name for m in extra if m not in runnable]:
        notes.append(f"{'; '.join(left_out)}: through the engine only, left out here")
    if len(data.queries) < len(full.queries) or len(data.corpus) < len(full.corpus):
        notes.append(
            f"a sample: {len(data.queries)} of {len(full.queries)} queries, "
            f"{len(data.corpus)} of {len(full.corpus)} documents (seed {seed})"
        )
    notes += [f"{v} {what} left out" for what, v in data.skipped.items() if v]
    if corpus_seconds:
        notes.append(f"embedding the corpus took {corpus_seconds:.1f} s (cached for next time)")
    if passage_seconds:
        notes.append(f"embedding the passages took {passage_seconds:.1f} s (cached for next time)")
    if len(kinds) > 1 or by_mode:
        notes.append(f"delta = nDCG@10 minus that of {kinds[0][0]}/{kinds[0][1]}")
    if backend.via != "engine":
        notes.append("ms/query over HTTP is end to end (the server embeds each query)")
    first = rows[0]
    mode_columns = ["mode"] if by_mode else []
    return EvalResult(
        task="retrieval",
        dataset=f"{folder} ({split})",
        via=backend.via,
        embedder=backend.embedder,
        size={"queries": len(qids), "documents": len(data.corpus)},
        scores={m: float(first[m]) for m in ("ndcg@10", f"recall@{k}", "mrr@10")},
        columns=[
            "metric",
            "index",
            *mode_columns,
            "ndcg@10",
            "delta",
            *(["vs best single"] if by_mode else []),
            f"recall@{k}",
            "mrr@10",
            "ms/query",
            "search ms/query",
            "build s",
        ],
        rows=rows,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


def _chunking_note(described: dict[str, Any], documents: int) -> str:
    spec, rows = described.get("chunking") or {}, described.get("count")
    return (
        f"chunked: passages of at most {spec.get('max_tokens', '?')} tokens sharing up to "
        f"{spec.get('overlap', '?')}, {rows if rows is not None else '?'} rows for {documents} "
        "documents; one hit per document (its best passage, group_by_document)"
    )


# ---- analogy ----------------------------------------------------------------------------------
def evaluate_analogy(
    path: str | Path,
    target: Backend | Engine,
    methods: tuple[str, ...] = METHODS,
    sections: list[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    check: int = 0,
) -> EvalResult:
    """Top-1 accuracy of each method over the whole test vocabulary (inputs excluded), overall,
    per group and per section. `sections` keeps the sections whose names start with one of
    the prefixes; `limit` samples questions. With `check` > 0 (engine only), that many sampled
    questions are also answered by `indexer.analogy.analogy` and must agree."""
    backend, path = as_backend(target), Path(path)
    t0 = time.perf_counter()
    full = load_analogies(path)
    chosen = full.only(sections) if sections else full
    aset = chosen.sample(limit, seed)
    U = backend.word_vectors(aset.vocab)  # (V, d) unit
    correct = {
        m: metrics.analogy_correct(top_candidates(U, aset.questions, m), aset.targets)
        for m in methods
    }

    def row(label: str, level: str, mask: np.ndarray) -> dict[str, Any]:
        return {
            "section": label,
            "level": level,
            "questions": int(mask.sum()),
            **{m: metrics.accuracy(correct[m][mask]) for m in methods},
        }

    rows = [row("all", "all", np.ones(len(aset), dtype=bool))]
    for group in dict.fromkeys(aset.groups):
        in_group = [i for i, g in enumerate(aset.groups) if g == group]
        rows.append(row(group, "group", np.isin(aset.section_of, in_group)))
        rows.extend(row(f"  {aset.sections[i]}", "section", aset.section_of == i) for i in in_group)
    scores = {m: rows[0][m] for m in methods}
    notes = [f"candidates: the {len(aset.vocab):,} words of the test set, inputs excluded"]
    if len(aset) < len(full):
        notes.append(f"a subset: {len(aset):,} of {len(full):,} questions (seed {seed})")
    else:
        notes += _published("analogy", path, backend.embedder, scores)
    if "nn" in methods:
        notes.append("nn = the nearest neighbour of b alone (the baseline)")
    if check > 0 and isinstance(backend, EngineBackend):
        agree, asked = check_against_engine(backend, aset, check, seed)
        scores["engine_agreement"] = agree / asked
        notes.append(f"{agree} of {asked} sampled answers identical through indexer.analogy")
    return EvalResult(
        task="analogy",
        dataset=str(path),
        via=backend.via,
        embedder=backend.embedder,
        size={"questions": len(aset), "words": len(aset.vocab), "sections": len(aset.sections)},
        scores=scores,
        columns=["section", "questions", *methods],
        rows=rows,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


def check_against_engine(
    backend: EngineBackend, aset: Any, n: int, seed: int = 0
) -> tuple[int, int]:
    """Answer `n` sampled questions with `indexer.analogy.analogy` (3cosadd and 3cosmul) over
    the words collection, and count how often its top word is the batched top word."""
    from ..analogy import analogy

    col = backend.words_collection(aset.vocab)
    labels, unit = col.unit_vectors()
    order = [col.id_by_label[int(lab)] for lab in labels]  # candidates in the engine's order
    where = {w: i for i, w in enumerate(order)}
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(aset), min(n, len(aset)), replace=False)
    agree = asked = 0
    for method in ("3cosadd", "3cosmul"):
        q = np.array([[where[aset.vocab[j]] for j in aset.questions[i]] for i in picked])
        batched = top_candidates(unit, q, method)
        for i, top in zip(picked, batched, strict=True):
            a, a_star, b, _ = aset.words(int(i))
            hits = analogy(col, positive=[a_star, b], negative=[a], k=1, method=method).hits
            asked += 1
            agree += bool(hits) and hits[0].id == order[int(top)]
    return agree, asked
