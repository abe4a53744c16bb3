"""The same evaluations through a running service's HTTP API, so the served path is measured.

- STS: `POST /v1/similarity {texts}`; with one pair per request (the default) the answer's
  `pair.cosine`, otherwise `cosine[2i][2i+1]` of the pairwise matrix.
- Words (analogy, word similarity): `POST /v1/embeddings` (the OpenAI format), normalised.
- Retrieval: the corpus goes once into `eval-<dataset>-<embedder>-vectors` (`PUT .../documents`
  with texts and `skip_unchanged`, so the server embeds it once across runs), its stored vectors
  are read back (`GET .../documents?with_vectors=true`) and sent to a fresh collection per index
  kind, which `POST .../search/batch` then queries by text (the server embeds the queries: the
  time per query is end to end).

`HttpBackend` takes any `httpx.Client` whose base URL is the service (FastAPI's TestClient is
one), or builds its own from a URL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import VPError
from .backend import (
    MODES,
    UPLOAD_BATCH,
    Mode,
    ProgressFactory,
    Retrieved,
    chunks,
    collection_name,
    no_progress,
)

MAX_SIMILARITY_PAIRS = 128  # the service takes at most 256 texts per similarity request
EMBED_BATCH = 512
SEARCH_BATCH = 64
TEXT_BATCH = 128  # documents per upsert when the server embeds them


class RemoteError(VPError):
    """The service could not be reached or answered with an error."""

    status = 502
    code = "remote_error"


class HttpBackend:
    via: str

    def __init__(
        self,
        url: str | None = None,
        client: Any = None,
        api_key: str | None = None,
        timeout: float = 600.0,
        pairs_per_request: int = 1,
        progress: ProgressFactory = no_progress,
        keep: bool = False,
    ) -> None:
        if client is None:
            if not url:
                raise RemoteError("give the service URL or an httpx client", field="url")
            import httpx

            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)
            self._own = True
        else:
            self._own = False
        self.client = client
        self.via = url or str(getattr(client, "base_url", "http"))
        if not 1 <= pairs_per_request <= MAX_SIMILARITY_PAIRS:
            raise RemoteError(
                f"pairs per request must be in [1, {MAX_SIMILARITY_PAIRS}]", field="pairs"
            )
        self.pairs_per_request = pairs_per_request
        self.progress = progress
        self.keep = keep
        self._embedder: str | None = None

    def close(self) -> None:
        if self._own:
            self.client.close()

    # ---- plumbing --------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {self.via}: {e}", field="url") from None
        if r.status_code >= 400:
            try:
                body = r.json()
                detail = body.get("detail", body) if isinstance(body, dict) else body
            except ValueError:
                detail = r.text[:300]
            raise RemoteError(f"{method} {path}: HTTP {r.status_code}: {detail}", field="url")
        return r.json() if r.content else {}

    def wait_ready(self, seconds: float) -> None:
        """Poll `/readyz` until the service answers 200 (it may still be starting)."""
        import httpx

        deadline = time.monotonic() + seconds
        while True:
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RemoteError(f"{self.via} not ready after {seconds:.0f} s", field="url")
            time.sleep(0.25)

    @property
    def embedder(self) -> str:
        if self._embedder is None:
            self._embedder = str(self._call("POST", "/v1/embeddings", json={"input": "x"})["model"])
        return self._embedder

    def _bar(self, total: int, desc: str, unit: str) -> Any:
        return self.progress(total, desc, unit)

    # ---- the four operations ---------------------------------------------------------------
    def pair_cosines(self, left: list[str], right: list[str]) -> NDArray[np.float64]:
        out = np.zeros(len(left), dtype=np.float64)
        bar = self._bar(len(left), "similarity", "pair")
        for s in chunks(len(left), self.pairs_per_request):
            texts = [t for pair in zip(left[s], right[s], strict=True) for t in pair]
            body = self._call("POST", "/v1/similarity", json={"texts": texts})
            if len(texts) == 2:
                out[s] = body["pair"]["cosine"]
            else:
                cos = body["cosine"]
                out[s] = [cos[2 * i][2 * i + 1] for i in range(len(texts) // 2)]
            if bar is not None:
                bar.update(s.stop - s.start)
        if bar is not None:
            bar.close()
        return out

    def word_vectors(self, words: list[str]) -> NDArray[np.float32]:
        rows: list[list[float]] = []
        for s in chunks(len(words), EMBED_BATCH):
            body = self._call("POST", "/v1/embeddings", json={"input": words[s]})
            self._embedder = str(body["model"])
            data = sorted(body["data"], key=lambda e: e["index"])
            rows.extend(e["embedding"] for e in data)
        X = np.asarray(rows, dtype=np.float32).reshape(len(words), -1)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return (X / np.where(norms == 0, 1, norms)).astype(np.float32)

    def _fresh(self, name: str, spec: dict[str, Any]) -> None:
        try:
            self._call("DELETE", f"/v1/collections/{name}")
        except RemoteError as e:
            if "HTTP 404" not in e.detail:
                raise
        self._call("POST", "/v1/collections", json={"name": name, **spec})

    def corpus_vectors(
        self, dataset: str, corpus: dict[str, str]
    ) -> tuple[dict[str, list[float]], float]:
        name = collection_name(dataset, self.embedder, "vectors")
        try:
            self._call("POST", "/v1/collections", json={"name": name})
        except RemoteError as e:
            if "HTTP 409" not in e.detail:
                raise
        ids = sorted(corpus)
        t0, embedded = time.perf_counter(), 0
        bar = self._bar(len(ids), f"embedding {dataset} (server)", "doc")
        for s in chunks(len(ids), TEXT_BATCH):
            docs = [{"id": d, "text": corpus[d]} for d in ids[s]]
            body = self._call(
                "PUT",
                f"/v1/collections/{name}/documents",
                json={"documents": docs, "skip_unchanged": True},
            )
            embedded += int(body.get("upserted", len(docs)))
            if bar is not None:
                bar.update(s.stop - s.start)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0 if embedded else 0.0
        vectors: dict[str, list[float]] = {}
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000, "with_vectors": "true"}
            if cursor is not None:
                params["cursor"] = cursor
            page = self._call("GET", f"/v1/collections/{name}/documents", params=params)
            vectors.update((d["id"], d["vector"]) for d in page["documents"] if d["id"] in corpus)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        missing = len(corpus) - len(vectors)
        if missing:
            raise RemoteError(f"{missing} documents of {dataset} did not come back", field="url")
        return vectors, seconds

    def retrieve(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
    ) -> Retrieved:
        return self.retrieve_modes(
            dataset, corpus, queries, metric, index, params, k, [MODES["vector"]]
        )[0]

    def supports(self, mode: Mode) -> bool:
        # chunked modes would have the server embed every passage of the corpus once more
        # (about as long as the corpus itself): run them through the engine
        return not mode.chunked

    def retrieve_modes(
        self,
        dataset: str,
        corpus: dict[str, str],
        queries: list[str],
        metric: str,
        index: str,
        params: dict[str, Any] | None,
        k: int,
        modes: Sequence[Mode],
    ) -> list[Retrieved]:
        if not all(self.supports(m) for m in modes):
            raise RemoteError("chunked modes are evaluated through the engine only", field="modes")
        vectors, corpus_seconds = self.corpus_vectors(dataset, corpus)
        name = collection_name(dataset, metric, index)
        spec: dict[str, Any] = {"metric": metric, "index": index}
        if params:
            spec["params"] = params
        t0 = time.perf_counter()
        self._fresh(name, spec)
        ids = list(vectors)
        for s in chunks(len(ids), UPLOAD_BATCH):
            docs = [{"id": d, "text": corpus[d], "vector": vectors[d]} for d in ids[s]]
            self._call("PUT", f"/v1/collections/{name}/documents", json={"documents": docs})
        build_seconds = time.perf_counter() - t0
        out: list[Retrieved] = []
        try:
            for i, mode in enumerate(modes):
                ranked, search_seconds = self._search(name, mode, queries, k)
                described = self._call("GET", f"/v1/collections/{name}")
                out.append(
                    Retrieved(
                        ranked,
                        search_seconds,
                        0.0,
                        build_seconds,
                        corpus_seconds if i == 0 else 0.0,
                        described,
                    )
                )
        finally:
            if not self.keep:
                self._call("DELETE", f"/v1/collections/{name}")
        return out

    def _search(
        self, name: str, mode: Mode, queries: list[str], k: int
    ) -> tuple[list[list[str]], float]:
        ranked: list[list[str]] = []
        bar = self._bar(len(queries), f"searching {name} ({mode.name})", "query")
        self._call("POST", f"/v1/collections/{name}/search", json=mode.request(queries[0], k))
        t0 = time.perf_counter()
        for s in chunks(len(queries), SEARCH_BATCH):
            body = self._call(
                "POST",
                f"/v1/collections/{name}/search/batch",
                json={"searches": [mode.request(q, k) for q in queries[s]]},
            )
            ranked.extend([h["id"] for h in r["hits"]] for r in body["results"])
            if bar is not None:
                bar.update(s.stop - s.start)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        return ranked, seconds
