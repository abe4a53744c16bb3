"""Long documents stored as passages: how a chunked collection lays them out.

A text that fits the model is stored as one row under its own id, as in any collection. A longer
one becomes rows `<id>#0`, `<id>#1`, ... whose metadata carries the user's metadata plus the
passage → document link:

    _document       the document's id
    _passage        the passage's number, from 0
    _start, _end    the passage's character offsets in the document's text
    _document_hash  the content hash of the whole document (so a re-run build skips it)

Passages are stored contiguous (a gap between two, whitespace or anything else without a model
token, is given to the first), so the document's text is their concatenation minus the
overlaps: `document_text` rebuilds it exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chunking import Passage, split_passages
from .errors import InvalidInput

DOC, NUM, START, END, HASH = "_document", "_passage", "_start", "_end", "_document_hash"
RESERVED = (DOC, NUM, START, END, HASH)
PASSAGE_ID = re.compile(r"#\d+$")


@dataclass(frozen=True)
class Chunking:
    max_tokens: int
    overlap: int

    @classmethod
    def parse(cls, spec: Any, model_max: int) -> Chunking:
        """From a create request's `chunking` (true, or {"max_tokens", "overlap"})."""
        if spec is True:
            spec = {}
        if not isinstance(spec, dict) or set(spec) - {"max_tokens", "overlap"}:
            raise InvalidInput(
                'chunking must be true or {"max_tokens": int, "overlap": int}', field="chunking"
            )
        max_tokens = spec.get("max_tokens", model_max)
        overlap = spec.get("overlap", min(32, max_tokens // 4) if _int(max_tokens) else 0)
        if not _int(max_tokens) or not 16 <= max_tokens <= model_max:
            raise InvalidInput(
                f"chunking.max_tokens must be an integer in [16, {model_max}] (the model's limit)",
                field="chunking.max_tokens",
            )
        if not _int(overlap) or not 0 <= overlap <= max_tokens // 2:
            raise InvalidInput(
                f"chunking.overlap must be an integer in [0, {max_tokens // 2}]",
                field="chunking.overlap",
            )
        return cls(max_tokens, overlap)

    def to_json(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens, "overlap": self.overlap}


def _int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_document(doc_id: str, metadata: dict[str, Any] | None, where: str) -> None:
    """In a chunked collection, ids and metadata keys must not look like the passage layout."""
    if PASSAGE_ID.search(doc_id):
        raise InvalidInput(
            f"{where}.id must not end in '#<number>' in a chunked collection "
            "(that names a passage)",
            field=f"{where}.id",
        )
    for key in metadata or {}:
        if key in RESERVED:
            raise InvalidInput(
                f"{where}.metadata.{key} is reserved for passages in a chunked collection",
                field=f"{where}.metadata",
            )


def split(
    text: str, spans: Callable[[str], list[tuple[int, int]]], chunking: Chunking
) -> list[Passage]:
    """The passages to store: contiguous, covering the whole text (see the module doc)."""
    parts = split_passages(text, spans, chunking.max_tokens, chunking.overlap)
    if len(parts) <= 1:
        return parts
    out = []
    for i, p in enumerate(parts):
        start = 0 if i == 0 else p.start
        end = len(text) if i == len(parts) - 1 else max(p.end, parts[i + 1].start)
        if spans(text[start : p.start]):  # only text the model sees no token in is given away
            start = p.start
        if spans(text[p.end : end]):
            end = p.end
        out.append(Passage(text[start:end], start, end, p.tokens))
    return out


def passage_metadata(
    doc_id: str, metadata: dict[str, Any], i: int, p: Passage, doc_hash: str
) -> dict[str, Any]:
    return {**metadata, DOC: doc_id, NUM: i, START: p.start, END: p.end, HASH: doc_hash}


def user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in RESERVED}


def passage_info(passage_id: str, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """What a hit says about the passage it found, or None for a whole-document row."""
    if DOC not in metadata:
        return None
    return {
        "document": metadata[DOC],
        "id": passage_id,
        "index": metadata.get(NUM),
        "start": metadata.get(START),
        "end": metadata.get(END),
    }


def document_text(passages: list[tuple[str, dict[str, Any]]]) -> str:
    """The document's text from its (text, metadata) passages, in any order."""
    out, end = "", 0
    for text, meta in sorted(passages, key=lambda p: int(p[1][NUM])):
        start = int(meta[START])
        out += text[max(0, end - start) :]
        end = max(end, int(meta[END]))
    return out
