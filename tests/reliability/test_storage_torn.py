"""R3: torn and corrupted files recover to the last complete state or are refused loudly; never
a wrong, partial or silently empty collection.

The crash image is the store's files copied while the writer still has them open (exactly what
a kill -9 leaves): `store.sqlite` plus a WAL holding the last 8 transactions. SQLite's WAL
frames are checksummed in a chain, so the state to expect from a damaged WAL is computable:
the transactions whose commit frame lies wholly before the first torn or damaged frame. Each
case is opened by the engine (`Collection`) and compared document by document, vector bit for
bit, with the state after that many transactions. The database file itself, damaged after a
clean close, must open identical or be refused with CorruptCollection. Snapshot files,
truncated or flipped, are skipped: the index comes from the previous snapshot or a rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer import DocumentIn
from indexer.collection import Collection
from indexer.errors import CorruptCollection
from indexer.snapshot import list_snapshots

from .storage_support import SEED, engine_at, index_problems, report, scaled, stored_docs

WAL_HEADER, FRAME_HEADER = 32, 24
State = dict[str, tuple[bytes, str | None, dict[str, Any]]]


def state_of(col: Collection) -> State:
    return {d.id: (d.vector.tobytes(), d.text, d.metadata) for d in stored_docs(col).values()}


def wal_frames(wal: bytes) -> list[tuple[int, bool]]:
    """(end offset, is a commit) of each whole frame."""
    page = int.from_bytes(wal[8:12], "big")
    frames, off = [], WAL_HEADER
    while off + FRAME_HEADER + page <= len(wal):
        frames.append((off + FRAME_HEADER + page, wal[off + 4 : off + 8] != b"\0\0\0\0"))
        off += FRAME_HEADER + page
    return frames


def fast_dir(tmp: Path) -> Path:
    """Cases are opened thousands of times and their durability is not the point: put them on
    tmpfs (/dev/shm) when there is one, where fsync costs nothing."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="vp-torn-", dir=shm))
    return tmp


def commits_before(frames: list[tuple[int, bool]], end: int) -> int:
    """Transactions whose frames all lie in wal[:end] (SQLite replays exactly those)."""
    return sum(1 for stop, commit in frames if commit and stop <= end)


class Image:
    """A crash image: manifest, store.sqlite and WAL bytes, and the state after each of the
    transactions in the WAL (states[k] = after the first k)."""

    def __init__(self, tmp: Path) -> None:
        data = tmp / "build"
        rng = np.random.default_rng(SEED)
        engine = engine_at(data)
        col = engine.create_collection("t", dim=8, metric="l2")
        col.upsert([self._doc(rng, f"d{i}", 0) for i in range(24)])
        engine.close()  # clean close: checkpointed, the WAL starts empty
        col = engine_at(data).collection("t")
        self.states = [state_of(col)]
        for op in range(1, 9):
            if op % 3 == 0:
                col.delete(ids=[f"d{i}" for i in rng.choice(24, 2, replace=False)])
            else:
                col.upsert([self._doc(rng, f"d{i}", op) for i in rng.choice(30, 3, replace=False)])
            self.states.append(state_of(col))
        folder = data / "t"
        self.manifest = (folder / "manifest.json").read_bytes()
        self.db = (folder / "store.sqlite").read_bytes()
        self.wal = (folder / "store.sqlite-wal").read_bytes()  # the writer is still open
        col.close()
        self.frames = wal_frames(self.wal)
        assert sum(c for _, c in self.frames) == 8, "one commit frame per transaction"
        self.case = fast_dir(tmp) / "case"

    @staticmethod
    def _doc(rng: np.random.Generator, doc_id: str, op: int) -> DocumentIn:
        vec = rng.normal(size=8).astype(np.float32)
        return DocumentIn(id=doc_id, vector=vec, text=f"{doc_id} v{op}", metadata={"op": op})

    def open(self, db: bytes, wal: bytes | None) -> State:
        """Write the files to a fresh folder and open them as the engine would."""
        shutil.rmtree(self.case, ignore_errors=True)
        self.case.mkdir()
        (self.case / "manifest.json").write_bytes(self.manifest)
        (self.case / "store.sqlite").write_bytes(db)
        if wal is not None:
            (self.case / "store.sqlite-wal").write_bytes(wal)
        col = Collection(self.case, None)
        try:
            state = state_of(col)
            problems = index_problems(col, stored_docs(col))
        finally:
            col.close()
        assert not problems, problems
        return state


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    img = Image(tmp_path_factory.mktemp("torn"))
    try:
        yield img
    finally:
        shutil.rmtree(img.case.parent, ignore_errors=True)


def tail_offsets(image: Image, rng: np.random.Generator) -> list[int]:
    """Cut points in the last 3 transactions (7 frames of 4 KB each): every frame edge +-1;
    in the full tier every header byte of their frames and every byte of the last 3 frames,
    in the fast tier the header bytes of the last 3 frames and 100 random bytes."""
    commits = [stop for stop, commit in image.frames if commit]
    start = commits[-4]
    edges = [start] + [stop for stop, _ in image.frames if stop > start]
    cuts = {e + d for e in edges for d in (-1, 0, 1)}
    if scaled(0, 1):
        cuts |= {e + h for e in edges[:-1] for h in range(FRAME_HEADER)}
        cuts |= set(range(image.frames[-4][0], len(image.wal) + 1))
    else:
        cuts |= {e + h for e in edges[-4:-1] for h in range(FRAME_HEADER)}
        cuts |= set(rng.integers(start, len(image.wal), 100).tolist())
    return sorted(o for o in cuts if start <= o <= len(image.wal))


def test_wal_torn_at_every_byte_of_the_tail_recovers_the_committed_prefix(image: Image) -> None:
    rng = np.random.default_rng(SEED)
    seen: Counter[int] = Counter()
    offsets = tail_offsets(image, rng)
    for end in offsets:
        k = commits_before(image.frames, end)
        got = image.open(image.db, image.wal[:end])
        assert got == image.states[k], f"WAL cut at byte {end}: not the state after {k} commits"
        seen[k] += 1
    figures = {"cases": len(offsets), "frames": len(image.frames), "wal_bytes": len(image.wal)}
    report("storage-torn-wal", {**figures, "states_reached": dict(sorted(seen.items()))})
    assert len(seen) == 4, "the cuts reach each of the last 3 commits and the one before"


def test_garbage_after_the_wal_is_ignored(image: Image) -> None:
    rng = np.random.default_rng(SEED)
    edges = [stop for stop, _ in image.frames]
    for case in range(scaled(20, 200)):
        cut = len(image.wal) if case % 2 == 0 else int(rng.choice(edges))
        junk = rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
        got = image.open(image.db, image.wal[:cut] + junk)
        assert got == image.states[commits_before(image.frames, cut)], f"case {case}"


def test_a_flipped_bit_in_the_wal_loses_that_frame_and_later_ones_only(image: Image) -> None:
    """SQLite's WAL checksum chain: a damaged frame and every frame after it are ignored, so
    the collection opens at the last commit before the damage. This is a loss of committed
    transactions, which SQLite cannot see as such; it is reported, never a wrong state."""
    rng = np.random.default_rng(SEED + 1)
    lost: Counter[int] = Counter()
    page = int.from_bytes(image.wal[8:12], "big")
    for _ in range(scaled(40, 400)):
        pos = int(rng.integers(0, len(image.wal)))
        wal = bytearray(image.wal)
        wal[pos] ^= 1 << int(rng.integers(0, 8))
        frame = -1 if pos < WAL_HEADER else (pos - WAL_HEADER) // (FRAME_HEADER + page)
        start = WAL_HEADER + max(frame, 0) * (FRAME_HEADER + page)
        k = 0 if frame < 0 else commits_before(image.frames, start)
        assert image.open(image.db, bytes(wal)) == image.states[k], f"flip at byte {pos}"
        lost[8 - k] += 1
    report("storage-wal-flips", {"commits_lost_by_flip": dict(sorted(lost.items()))})


def test_a_damaged_database_file_opens_identical_or_is_refused(image: Image) -> None:
    """After a clean close the whole state is in store.sqlite. Truncated at every page edge
    and at random bytes, or with a bit flipped anywhere: the engine either serves exactly the
    right documents or refuses with CorruptCollection, never something else."""
    full = image.open(image.db, image.wal)
    clean = (image.case / "store.sqlite").read_bytes()  # checkpointed by that open's close
    rng = np.random.default_rng(SEED + 2)
    cases: list[tuple[str, bytes]] = [("empty", b"")]
    cases += [(f"cut {n}", clean[:n]) for n in range(0, len(clean), 4096)[1:]]
    cases += [(f"cut {n}", clean[:n]) for n in rng.integers(1, len(clean), scaled(20, 200))]
    for pos in rng.integers(0, len(clean), scaled(120, 1200)):
        flipped = bytearray(clean)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        cases.append((f"flip {pos}", bytes(flipped)))
    cases += payload_flips(clean, full, rng)
    outcome: Counter[str] = Counter()
    for name, db in cases:
        try:
            got = image.open(db, None)
        except CorruptCollection:
            outcome["refused"] += 1
            continue
        assert got == full, f"{name}: served a different collection"
        outcome["identical"] += 1
    report("storage-db-damage", {"cases": len(cases), **outcome})
    assert outcome["refused"] > 0


def payload_flips(clean: bytes, state: State, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """A bit flipped inside stored values (vectors, texts, metadata): SQLite's checks do not
    see these, the rows' checksums must. Every copy of each value in the file is hit."""
    cases = []
    for doc_id, (vector, text, metadata) in sorted(state.items())[:8]:
        for what, value in (("vector", vector), ("text", str(text).encode())):
            at = clean.find(value)
            while at >= 0:
                flipped = bytearray(clean)
                flipped[at + int(rng.integers(0, len(value)))] ^= 1 << int(rng.integers(0, 8))
                cases.append((f"{what} of {doc_id} at {at}", bytes(flipped)))
                at = clean.find(value, at + 1)
        meta = json.dumps(metadata, sort_keys=True).encode()
        at = clean.find(meta)
        if at >= 0:
            flipped = bytearray(clean)
            flipped[at + len(meta) - 2] ^= 1  # the op number's last digit: still valid JSON
            cases.append((f"metadata of {doc_id}", bytes(flipped)))
    return cases


def test_damaged_snapshots_are_skipped_for_the_previous_one_or_a_rebuild(tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    data = tmp_path / "data"
    engine = engine_at(data)
    col = engine.create_collection("s", dim=8, index="hnsw", params={"ann_threshold": 50})
    docs = [DocumentIn(id=f"d{i}", vector=rng.normal(size=8)) for i in range(300)]
    col.upsert(docs[:200])
    col.upsert(docs[200:])
    col.snapshot(force=True)
    engine.close()
    files = list_snapshots(data / "s")
    assert len(files) == 2
    newest, previous = files[0].read_bytes(), files[1].read_bytes()
    damage: list[bytes] = []
    for n in rng.integers(0, len(newest), scaled(10, 100)):
        damage.append(newest[:n])
    for pos in rng.integers(0, len(newest), scaled(10, 100)):
        flipped = bytearray(newest)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        damage.append(bytes(flipped))
    newest_seq, previous_seq = (int(f.name[4:16]) for f in files)
    for i, bad in enumerate(damage):
        for both in (False, True):  # the previous snapshot intact, or damaged as well
            files[0].write_bytes(bad)
            files[1].write_bytes(bad if both else previous)
            col = engine_at(data).collection("s")
            problems = index_problems(col, stored_docs(col))
            col.close()
            assert not problems, f"damage {i}: {problems}"
            assert col.index.ann is not None and col.count() == 300
            # both damaged: rebuilt from the documents and published again as the newest
            assert col.snapshot_seq == (newest_seq if both else previous_seq), f"damage {i}"
    report("storage-snapshot-damage", {"cases": 2 * len(damage)})
