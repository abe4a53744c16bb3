"""The floor of our own stack: a minimal FastAPI + FAISS HNSW endpoint, about 40 lines.

    BENCH_VECTORS=corpus.npy BENCH_EF=32 uvicorn bench.reference:app --port 8101

Unit vectors in, inner product (= cosine) out; no validation, storage, auth, logs or metrics.
The index is built at start-up (HNSW32, as FAISS users write it) and cached beside the vectors.
"""

import os
from pathlib import Path

import faiss
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

try:  # orjson when the environment has it (the anchor figure used it)
    import orjson  # noqa: F401
    from fastapi.responses import ORJSONResponse as FastResponse
except ImportError:
    from fastapi.responses import JSONResponse as FastResponse

faiss.omp_set_num_threads(1)
VECTORS = Path(os.environ["BENCH_VECTORS"])
M, EF = int(os.environ.get("BENCH_M", "32")), int(os.environ.get("BENCH_EF", "32"))
cached = VECTORS.with_suffix(f".hnsw{M}.faiss")
if cached.exists():
    index = faiss.read_index(str(cached))
else:
    index = faiss.IndexHNSWFlat(
        int(np.load(VECTORS, mmap_mode="r").shape[1]), M, faiss.METRIC_INNER_PRODUCT
    )
    index.add(np.load(VECTORS))
    faiss.write_index(index, str(cached))
app = FastAPI(default_response_class=FastResponse)


class Query(BaseModel):
    vector: list[float]
    k: int = 10
    ef_search: int | None = None


@app.post("/search")
def search(q: Query) -> dict:
    x = np.asarray([q.vector], dtype=np.float32)
    params = faiss.SearchParametersHNSW(efSearch=q.ef_search or EF)
    scores, ids = index.search(x, q.k, params=params)
    return {"ids": ids[0].tolist(), "scores": scores[0].tolist()}


@app.get("/ready")
def ready() -> dict:
    return {"ntotal": index.ntotal}
