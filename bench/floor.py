"""The floors measured in-process, with no HTTP: FAISS HNSW32 (the reference endpoint's index)
swept over ef_search, and the exact flat scan. One query at a time on one thread, as a
request would be served."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench.data import Dataset


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def per_query(
    index: Any, queries: np.ndarray, k: int = 10, params: Any = None, budget_s: float = 3.0
) -> tuple[np.ndarray, float]:
    """Answers for every query, and the median-of-batches time per single-query search."""
    rows, times = [], []
    t_end = time.perf_counter() + budget_s
    for i in range(len(queries)):
        t0 = time.perf_counter()
        _, ids = index.search(queries[i : i + 1], k, params=params)
        times.append(time.perf_counter() - t0)
        rows.append(ids[0])
        if time.perf_counter() > t_end and i >= 50:  # enough for a time; recall below on all
            break
    if len(rows) < len(queries):
        _, ids = index.search(queries[len(rows) :], k, params=params)
        rows.extend(ids)
    return np.asarray(rows), float(np.median(times))


def hnsw_index(corpus_path: Path, m: int = 32) -> Any:
    """The reference endpoint's index, built once and cached beside the vectors."""
    cached = corpus_path.with_suffix(f".hnsw{m}.faiss")
    if cached.exists():
        return faiss.read_index(str(cached))
    x = np.load(corpus_path)
    index = faiss.IndexHNSWFlat(x.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.add(x)
    faiss.write_index(index, str(cached))
    return index


def flat_ms(ds: Dataset, n: int = 200) -> float:
    """Median ms of one exact flat-scan query, one thread (memory-bandwidth bound)."""
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatIP(ds.dim)
    flat.add(ds.vectors)
    _, t = per_query(flat, ds.queries[:n], budget_s=5.0)
    return t * 1000


def measure(ds: Dataset, corpus_path: Path, ef_grid: list[int]) -> dict[str, Any]:
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatIP(ds.dim)
    flat.add(ds.vectors)
    found, t = per_query(flat, ds.queries)
    out: dict[str, Any] = {"flat": {"ms_per_query": t * 1000, "recall": recall(found, ds.truth)}}
    t0 = time.perf_counter()
    hnsw = hnsw_index(corpus_path)
    out["hnsw_build_s"] = time.perf_counter() - t0
    curve = []
    for ef in ef_grid:
        params = faiss.SearchParametersHNSW(efSearch=ef)
        found, t = per_query(hnsw, ds.queries, params=params, budget_s=1.0)
        curve.append({"ef": ef, "recall": recall(found, ds.truth), "qps": 1 / t})
    out["hnsw32"] = curve
    return out


def exact_interleaved(
    ds: Dataset, post: Any, n: int = 200, budget_s: float = 10.0
) -> tuple[float, float]:
    """Median ms of the in-process flat scan and of the same exact query over HTTP (`post(i)`
    sends query i, one connection), taken query by query in turn: the scan is memory-bandwidth
    bound and its time moved 2.5-6.4 ms between processes and minutes on this machine, so only
    a floor measured in the same seconds is one to compare with. The HTTP time includes this
    Python client's own work (the bodies are encoded before), which counts against the
    service."""
    faiss.omp_set_num_threads(1)
    flat = faiss.IndexFlatIP(ds.dim)
    flat.add(ds.vectors)
    scans, calls = [], []
    t_end = time.perf_counter() + budget_s
    for i in range(min(n, len(ds.queries))):
        q = ds.queries[i : i + 1]
        t0 = time.perf_counter()
        flat.search(q, 10)
        t1 = time.perf_counter()
        post(i)
        t2 = time.perf_counter()
        scans.append(t1 - t0)
        calls.append(t2 - t1)
        if time.perf_counter() > t_end and i >= 50:
            break
    return float(np.median(scans)) * 1000, float(np.median(calls)) * 1000
