"""The ANN snapshot file: the one module that writes and reads it.

    snapshots/ann-<seq>.bin = MAGIC | header length (u32) | header JSON | body
    body = labels (int64) | faiss bytes, stored as is or (header "codec": "zlib") deflated

What the faiss bytes are is the header's "form" (indexer/index.py reads them): absent, a whole
FAISS index with its vectors (every snapshot before "form" was added); "hnsw-graph", an HNSW
graph written without its vectors (FAISS's IO_FLAG_SKIP_STORAGE), its labels in the graph's own
order: the vectors are in the store already, and the graph alone is a sixth of the size (57k
vectors of 384 floats: 104 MB, 16 MB, 3.8 MB deflated: most of its neighbour slots are empty).

The keyword (BM25) index is published the same way as snapshots/keyword-<seq>.bin, its body the
tokenised texts of the labels it holds (indexer/keyword.py), so reopening need not re-tokenise.

The header holds the seq the snapshot covers, the collection spec it was built for, a sha256 of
the body as stored and (since it was added; optional for older files) a sha256 of the header
itself. A file is published with `write_atomic` and verified (then inflated, at most to the size
its header gives) before FAISS ever sees its bytes: a damaged, torn or foreign file is skipped
(the previous snapshot or a rebuild takes its place), never served, and never unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .files import os_error, write_atomic

MAGIC = b"VPSNAP01"
KEEP = 2  # the newest and the one before it
log = logging.getLogger("vector_primer.store")


def write(
    path: Path,
    seq: int,
    built_n: int,
    labels: NDArray[np.int64],
    payload: bytes,
    spec: dict[str, Any],
    kind: str = "ann",
    form: str | None = None,
    deflate: bool = False,
) -> Path:
    """Publish a snapshot of the collection at `path`; older ones beyond KEEP are removed.
    `form` says what `payload` is (see above); `deflate` stores the body zlib-compressed."""
    body = np.ascontiguousarray(labels, dtype=np.int64).tobytes() + payload
    header: dict[str, Any] = {
        "seq": seq,
        "built_n": built_n,
        "n_labels": len(labels),
        "spec": spec,
    }
    if form is not None:
        header["form"] = form
    if deflate:
        header["codec"], header["body_bytes"] = "zlib", len(body)
        body = zlib.compress(body, 1)  # level 1: 0.1 s for 57k vectors' graph, near level 6
    header["sha256"] = hashlib.sha256(body).hexdigest()
    header["created"] = time.time()
    header["header_sha256"] = _header_sum(header)
    head = json.dumps(header).encode()
    snaps = path / "snapshots"
    target = snaps / snapshot_name(seq, kind)
    try:
        snaps.mkdir(exist_ok=True)
        write_atomic(target, MAGIC + struct.pack("<I", len(head)) + head + body)
    except OSError as e:
        raise os_error(e, "publishing a snapshot") from e
    for old in sorted(snaps.glob(f"{kind}-*.bin"))[:-KEEP]:
        with contextlib.suppress(OSError):
            old.unlink()
    return target


def read_valid(
    path: Path, spec: dict[str, Any], kind: str = "ann"
) -> Iterator[tuple[int, int, NDArray[np.int64], bytes, str | None]]:
    """Valid snapshots for `spec`, newest first: (seq, built_n, labels, faiss bytes, form).
    Damaged or foreign files are skipped, so a torn write can only cost a rebuild."""
    for file in list_snapshots(path, kind):
        parsed = read_snapshot(file, kind)
        if parsed is None or parsed[0].get("spec") != spec:
            continue
        header, labels, payload = parsed
        yield int(header["seq"]), int(header["built_n"]), labels, payload, header.get("form")


def snapshot_name(seq: int, kind: str = "ann") -> str:
    return f"{kind}-{seq:012d}.bin"


def list_snapshots(path: Path, kind: str = "ann") -> list[Path]:
    """Snapshot files of the collection at `path`, newest first (valid or not)."""
    snaps = path / "snapshots"
    return sorted(snaps.glob(f"{kind}-*.bin"), reverse=True) if snaps.is_dir() else []


def read_snapshot(
    file: Path, kind: str = "ann"
) -> tuple[dict[str, Any], NDArray[np.int64], bytes] | None:
    """(header, labels, faiss bytes) of a snapshot file that passes every check, else None."""
    try:
        parsed = _parse_snapshot(file.read_bytes())
    except OSError as e:
        log.warning("snapshot %s unreadable, skipped: %s", file.name, e)
        return None
    seq = parsed[0].get("seq") if parsed is not None else None
    if parsed is None or not isinstance(seq, int) or file.name != snapshot_name(seq, kind):
        log.warning("snapshot %s is damaged, skipped", file.name)
        return None
    return parsed


def _header_sum(header: dict[str, Any]) -> str:
    fields = {k: v for k, v in header.items() if k != "header_sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _parse_snapshot(data: bytes) -> tuple[dict[str, Any], NDArray[np.int64], bytes] | None:
    start = len(MAGIC)
    if not data.startswith(MAGIC) or len(data) < start + 4:
        return None
    (hlen,) = struct.unpack("<I", data[start : start + 4])
    if start + 4 + hlen > len(data):
        return None
    try:
        header = json.loads(data[start + 4 : start + 4 + hlen])
        if "header_sha256" in header and header["header_sha256"] != _header_sum(header):
            return None
        body = data[start + 4 + hlen :]
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            return None
        if "codec" in header:
            inflated = _inflate(body, header)
            if inflated is None:
                return None
            body = inflated
        n = int(header["n_labels"])
        if not 0 <= 8 * n <= len(body):
            return None
        labels = np.frombuffer(body[: 8 * n], dtype=np.int64)
        return header, labels, body[8 * n :]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _inflate(body: bytes, header: dict[str, Any]) -> bytes | None:
    """The deflated body, at most the size its header gives (never an unbounded inflate)."""
    size = header["body_bytes"]
    if header["codec"] != "zlib" or not isinstance(size, int) or size < 1:
        return None
    try:
        d = zlib.decompressobj()
        out = d.decompress(body, size + 1)
        return out if len(out) == size and d.eof and not d.unused_data else None
    except zlib.error:
        return None
