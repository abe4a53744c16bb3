"""The default `words` collection: every whole alphabetic word of the model's own tokenizer
vocabulary (about 21,700 for all-MiniLM-L6-v2), so `king - man + woman` works offline."""

from __future__ import annotations

from collections.abc import Callable

from .collection import Collection, DocumentIn
from .engine import Engine
from .errors import InvalidInput

WORDS = "words"


def build_words(
    engine: Engine,
    name: str = WORDS,
    words: list[str] | None = None,
    batch_size: int = 512,
    progress: Callable[[int], None] | None = None,
) -> Collection:
    """Create (or complete) the words collection; resumable, since unchanged words are skipped.
    `words` defaults to the embedder's vocabulary; `progress` is called with each batch size."""
    col = engine.create_collection(name, metric="cosine", index="flat", exist_ok=True)
    if words is None:
        assert col.embedder is not None
        words = col.embedder.vocabulary()
    if not words:
        raise InvalidInput(
            f"embedder {col.embedder_name!r} has no vocabulary: pass a word list", field="words"
        )
    words = sorted(set(words))
    for start in range(0, len(words), batch_size):
        chunk = words[start : start + batch_size]
        col.upsert([DocumentIn(id=w, text=w) for w in chunk], skip_unchanged=True)
        if progress is not None:
            progress(len(chunk))
    return col
