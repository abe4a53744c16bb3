"""The benchmark data: real-model vectors of real short texts, held-out queries, exact top-10.

Embedding 58k texts takes ~10 minutes on one busy core, so vectors are cached outside the repo
(`~/.cache/vector-primer-bench/`) in chunks: an interrupted run resumes where it stopped.
Queries are 1,000 texts held out of the corpus (a fixed seed); the ground truth is the exact
top-10 by cosine (a flat inner-product scan of unit vectors).

    python -m bench.data                 # embed everything once (progress on stderr)
    python -m bench.data --limit 20000   # or only the first 20k corpus texts + the queries
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
SHORT_TEXTS = SHARED_DATA / "short_texts" / "short_texts.tsv.gz"
CACHE = Path(os.environ.get("VP_BENCH_CACHE", Path.home() / ".cache" / "vector-primer-bench"))
MODEL = "all-MiniLM-L6-v2"
CHUNK = 2048
Vectors = NDArray[np.float32]


@dataclass
class Dataset:
    """Corpus (ids, texts, unit vectors), held-out queries, and exact top-10 per query."""

    ids: list[str]
    texts: list[str]
    vectors: Vectors  # (n, dim), unit length
    query_texts: list[str]
    queries: Vectors  # (q, dim), unit length
    truth: NDArray[np.int64]  # (q, 10): row numbers into the corpus, best first

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def read_texts(path: Path = SHORT_TEXTS) -> list[str]:
    """The `text` column of a `id<TAB>source<TAB>text` file (gzip or plain), header skipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [r[-1] for r in rows if r and r[-1].strip()]


def embed_cached(
    texts: list[str], embedder: str = MODEL, cache: Path = CACHE, upto: int | None = None
) -> Vectors:
    """Vectors of `texts[:upto]` in order, computed once per (embedder, texts) and kept in
    `cache` in chunks, so a later run for more texts only embeds the rest."""
    from indexer.embed import load_embedder

    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    final = cache / f"vectors-{embedder}-{key}.npy"
    upto = len(texts) if upto is None else min(upto, len(texts))
    if final.exists():
        return np.load(final, mmap_mode="r")[:upto].copy()
    parts = cache / f"chunks-{embedder}-{key}"
    parts.mkdir(parents=True, exist_ok=True)
    emb = load_embedder(embedder, threads=1, batch_size=64)
    chunks, t0 = [], time.perf_counter()
    for start in range(0, upto, CHUNK):
        part = parts / f"{start:07d}.npy"
        if not part.exists():
            np.save(part.with_suffix(".tmp.npy"), emb.embed(texts[start : start + CHUNK]))
            part.with_suffix(".tmp.npy").rename(part)
            done = min(start + CHUNK, len(texts))
            rate = done / (time.perf_counter() - t0)
            print(f"  embedded {done}/{len(texts)} ({rate:.0f}/s cumulative)", file=sys.stderr)
        chunks.append(np.load(part))
    vectors = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)
    if len(vectors) == len(texts):
        np.save(final, vectors)
        for p in parts.iterdir():
            p.unlink()
        parts.rmdir()
    return vectors[:upto]


def unit(x: Vectors) -> Vectors:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms == 0, 1, norms), dtype=np.float32)


def exact_top(corpus: Vectors, queries: Vectors, k: int = 10) -> NDArray[np.int64]:
    """Exact top-k rows of `corpus` by inner product (= cosine on unit vectors)."""
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus)
    _, rows = index.search(queries, k)
    return np.asarray(rows, dtype=np.int64)


def load(
    limit: int | None = None,
    n_queries: int = 1000,
    path: Path = SHORT_TEXTS,
    embedder: str = MODEL,
    cache: Path = CACHE,
) -> Dataset:
    """Held-out queries are the last `n_queries` of a seed-0 permutation; the corpus is the
    first `limit` of the rest (all of it by default)."""
    texts = read_texts(path)
    # embedding order: the queries, then the corpus in a seed-0 shuffle, so a prefix of the
    # cache (a --limit run) is a fair sample and a later full run only embeds the rest
    order = np.random.default_rng(0).permutation(len(texts))
    order = np.concatenate([order[-n_queries:], order[:-n_queries]])
    n_corpus = len(texts) - n_queries if limit is None else min(limit, len(texts) - n_queries)
    vecs = embed_cached([texts[r] for r in order], embedder, cache, upto=n_queries + n_corpus)
    q_rows, c_rows = order[:n_queries], order[n_queries : n_queries + n_corpus]
    queries, corpus = unit(vecs[:n_queries]), unit(vecs[n_queries:])
    tag = hashlib.sha256(corpus[:64].tobytes() + queries[:8].tobytes()).hexdigest()[:12]
    truth_path = cache / f"truth-{embedder}-{n_corpus}-{n_queries}-{tag}.npy"
    if truth_path.exists():
        truth = np.load(truth_path)
    else:
        truth = exact_top(corpus, queries, 10)
        np.save(truth_path, truth)
    return Dataset(
        ids=[f"t{int(r)}" for r in c_rows],
        texts=[texts[int(r)] for r in c_rows],
        vectors=corpus,
        query_texts=[texts[int(r)] for r in q_rows],
        queries=queries,
        truth=truth,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="corpus size (default: all)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    ds = load(limit=args.limit)
    print(
        f"corpus {len(ds.ids)} x {ds.dim}, queries {len(ds.query_texts)}, "
        f"ready in {time.perf_counter() - t0:.1f} s; cache {CACHE}"
    )


if __name__ == "__main__":
    main()
