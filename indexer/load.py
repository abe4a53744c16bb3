"""Reading a whole store when a collection opens: every row once, each checked against its
checksum, the vectors in one array.

SQLite checks its pages' structure, not the bytes stored in them, so without this a flipped bit
in a text, metadata or given vector would be served (a vector the engine embedded is not in the
hash; its text is). Checking each row with `content_hash` would parse its metadata and serialise
it again; here the checksum is recomputed from the stored bytes: the
store writes metadata as `json.dumps(metadata, sort_keys=True)`, so

    content_hash = sha256(json.dumps([text, metadata], sort_keys=True) [+ vector bytes])
                 = sha256("[" + json.dumps(text) + ", " + stored metadata + "]" [+ stored vector])

and a match proves the stored text and metadata are the ones hashed when written (a JSON string
literal ends at its first unescaped quote, so the text part cannot absorb metadata bytes). A row
that does not match this way gets `content_hash` itself before it is called damaged.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from .errors import CorruptCollection
from .store import Changes, Store, content_hash

# a table scan (in rowid order, which is label order unless rows were replaced) is about twice
# as fast as walking the label index: rows are sorted by label afterwards when they need it
_ROWS = "SELECT label, id, text, metadata, vector, content_hash FROM documents"
_quote = json.encoder.encode_basestring_ascii  # json.dumps(text) for a str, minus its wrapper


def read_verified(store: Store) -> Changes:
    """Every live document as `changes_since(0)` gives it, each row checked against its content
    hash (CorruptCollection names the first that fails), in one read transaction."""
    with store._guard("a read"):
        conn = store._conn()
        conn.execute("BEGIN")
        try:
            seq, generation = store.state()
            rows = conn.execute(_ROWS).fetchall()
            removed = [r[0] for r in conn.execute("SELECT label FROM removed WHERE seq > 0")]
        finally:
            conn.execute("COMMIT")
        labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if len(rows) > 1 and not bool(np.all(labels[1:] > labels[:-1])):
            order = np.argsort(labels, kind="stable")
            rows, labels = [rows[i] for i in order], labels[order]
        size = 4 * store.dim
        metadata: list[dict[str, Any]] = []
        given = False  # whether the last row's checksum covered its vector: try that first
        sha256 = hashlib.sha256
        for _, doc_id, text, meta, blob, want in rows:
            if not isinstance(blob, bytes) or len(blob) != size:
                got = len(blob) if isinstance(blob, bytes) else type(blob).__name__
                raise CorruptCollection(
                    f"document {doc_id!r} of collection {store.name!r}: stored vector has "
                    f"{got} bytes, expected {size}; restore the collection from a backup"
                )
            head = f"[{_quote(text) if isinstance(text, str) else 'null'}, {meta}]".encode()
            if given:
                given = sha256(head + blob).hexdigest() == want
                ok = given or sha256(head).hexdigest() == want
            else:
                ok = sha256(head).hexdigest() == want
                given = not ok and sha256(head + blob).hexdigest() == want
                ok = ok or given
            if not ok and not _matches(text, meta, blob, want, store.dim):
                raise CorruptCollection(
                    f"document {doc_id!r} of collection {store.name!r} fails its checksum; "
                    "restore the collection from a backup"
                )
            metadata.append({} if meta == "{}" else _parse(meta))
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32)
    return Changes(
        seq=seq,
        generation=generation,
        labels=labels,
        ids=[r[1] for r in rows],
        metadata=metadata,
        vectors=vectors.reshape(len(rows), store.dim),
        removed=np.asarray(removed, dtype=np.int64),
        texts=[r[2] for r in rows],
    )


def _parse(meta: str) -> Any:
    try:
        return json.loads(meta)
    except (TypeError, ValueError) as e:
        raise CorruptCollection(f"stored metadata is not JSON: {e}") from e


def _matches(text: str | None, meta: str, blob: bytes, want: str, dim: int) -> bool:
    """The checksum as `content_hash` computes it, for a row stored some other way."""
    metadata = _parse(meta)
    vector = np.frombuffer(blob, dtype=np.float32, count=dim)
    return want in (content_hash(text, metadata, None), content_hash(text, metadata, vector))
