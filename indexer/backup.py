"""Backups of a collection: a folder that restores to exactly the state it was taken at.

    <backup>/
        backup.json        collection, seq, count, creation time, the sha256 and size of every
                           file below, and a checksum of its own fields
        manifest.json      the collection's spec (metric, index, embedder, dim) as it was
        store.sqlite       a consistent copy of the documents, made with SQLite's online backup
                           API while writers go on: the state right after one `seq`
        snapshots/ann-<seq>.bin   the newest valid ANN snapshot not newer than that seq, if any

A backup is built in a hidden temp folder and renamed into place, so a backup folder is complete
or absent. Restoring verifies everything before anything is opened: backup.json's checksum, each
file's size and sha256 (again while copying), the manifest, `PRAGMA integrity_check` and that the
copied store holds the recorded seq and count. Nothing here unpickles (the snapshot is FAISS bytes
behind a sha256, the rest is JSON and SQLite) and nothing fetches a URL: a backup is a local folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CollectionExists, CorruptBackup, InvalidInput, VPError
from .files import fsync_dir, os_error, write_atomic
from .snapshot import list_snapshots, read_snapshot
from .store import Store, read_manifest, write_manifest

if TYPE_CHECKING:
    from .collection import Collection

BACKUP_FORMAT = 1
BACKUP_FILE = "backup.json"
MAX_BACKUP_JSON = 1 << 20
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FILE_RE = re.compile(r"^(manifest\.json|store\.sqlite|snapshots/ann-\d{12}\.bin)$")
CHUNK = 1 << 20


def new_backup_id(collection: str) -> str:
    """`<collection>-<UTC time>-<random>`, like Qdrant's `<collection>-<time>.snapshot` names."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime())
    return f"{collection}-{stamp}-{uuid.uuid4().hex[:6]}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _checksum(info: dict[str, Any]) -> str:
    fields = {k: v for k, v in info.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def describe(info: dict[str, Any]) -> dict[str, Any]:
    """What a client sees of a backup (Qdrant's SnapshotDescription, plus seq and count)."""
    return {
        "name": info["id"],
        "collection": info["collection"],
        "seq": info["seq"],
        "count": info["count"],
        "creation_time": info["created"],
        "size": sum(f["bytes"] for f in info["files"].values()),
        "checksum": info["checksum"],
    }


# ---- taking a backup ------------------------------------------------------------------------
def backup_collection(col: Collection, dest: Path) -> dict[str, Any]:
    """Write a backup of `col` to the new folder `dest`; returns its description."""
    if dest.exists():
        raise InvalidInput("the backup destination exists already", field="dest")
    tmp = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        info = _fill(col, tmp, dest.name)
        fsync_dir(tmp)
        os.rename(tmp, dest)
        fsync_dir(dest.parent)
    except OSError as e:
        raise os_error(e, "writing the backup") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return describe(info)


def _fill(col: Collection, tmp: Path, backup_id: str) -> dict[str, Any]:
    state = col.store.copy_to(tmp / "store.sqlite")
    write_atomic(tmp / "manifest.json", (col.path / "manifest.json").read_bytes())
    names = ["manifest.json", "store.sqlite"]
    for file in list_snapshots(col.path):
        parsed = read_snapshot(file)
        if parsed is None or parsed[0]["seq"] > state["seq"] or parsed[0]["spec"] != col.spec():
            continue
        (tmp / "snapshots").mkdir()
        write_atomic(tmp / "snapshots" / file.name, file.read_bytes())
        names.append(f"snapshots/{file.name}")
        break
    info: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "id": backup_id,
        "collection": col.name,
        **state,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": {
            n: {"sha256": _sha256(tmp / n), "bytes": (tmp / n).stat().st_size} for n in names
        },
    }
    info["checksum"] = _checksum(info)
    write_atomic(tmp / BACKUP_FILE, json.dumps(info, indent=2, sort_keys=True).encode())
    return info


# ---- reading and verifying ------------------------------------------------------------------
def read_info(src: Path) -> dict[str, Any]:
    """backup.json of the backup at `src`, its own checksum and file list verified (the files
    themselves are checked by `verify`)."""
    file = src / BACKUP_FILE
    try:
        if file.is_symlink() or file.stat().st_size > MAX_BACKUP_JSON:
            raise CorruptBackup(f"backup {src.name!r} has no usable {BACKUP_FILE}", field="backup")
        info = json.loads(file.read_bytes())
    except (OSError, ValueError) as e:
        raise CorruptBackup(f"backup {src.name!r}: cannot read {BACKUP_FILE} ({e})") from e
    if not isinstance(info, dict) or info.get("format") != BACKUP_FORMAT:
        raise CorruptBackup(f"backup {src.name!r} is not a backup of format {BACKUP_FORMAT}")
    if info.get("checksum") != _checksum(info):
        raise CorruptBackup(f"backup {src.name!r}: {BACKUP_FILE} fails its checksum")
    files = info.get("files")
    if not isinstance(files, dict) or not {"manifest.json", "store.sqlite"} <= set(files):
        raise CorruptBackup(f"backup {src.name!r} lists no manifest and store")
    for name in files:
        if not FILE_RE.match(name):
            raise CorruptBackup(f"backup {src.name!r} lists an unexpected file {name!r}")
    return info


def verify(src: Path) -> dict[str, Any]:
    """The backup's info after checking every file's size and sha256."""
    info = read_info(src)
    for name, want in info["files"].items():
        file = src / name
        if file.is_symlink() or not file.is_file():
            raise CorruptBackup(f"backup {src.name!r} is missing {name}")
        if file.stat().st_size != want["bytes"] or _sha256(file) != want["sha256"]:
            raise CorruptBackup(f"backup {src.name!r}: {name} fails its checksum")
    return info


# ---- restoring ------------------------------------------------------------------------------
def restore_collection(src: Path, target: Path) -> dict[str, Any]:
    """Restore the backup at `src` as the new collection folder `target` (atomically: the
    collection appears complete or not at all). Returns the backup's info."""
    info = verify(src)
    if target.exists():
        raise CollectionExists(f"collection {target.name!r} already exists", field="name")
    tmp = target.with_name(f".{target.name}.restoring-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
        _copy_verified(src, tmp, info)
        _check_restored(tmp, target.name, info)
        fsync_dir(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            raise CollectionExists(
                f"collection {target.name!r} already exists", field="name"
            ) from None
        fsync_dir(target.parent)
    except OSError as e:
        raise os_error(e, "restoring the backup") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return info


def _copy_verified(src: Path, tmp: Path, info: dict[str, Any]) -> None:
    """Copy each listed file, hashing what was written: a file changed after `verify` is
    caught here, not loaded."""
    for name, want in info["files"].items():
        out = tmp / name
        out.parent.mkdir(exist_ok=True)
        h = hashlib.sha256()
        with open(src / name, "rb") as fin, open(out, "wb") as fout:
            while chunk := fin.read(CHUNK):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if h.hexdigest() != want["sha256"]:
            raise CorruptBackup(f"backup {src.name!r}: {name} changed while being restored")
    if (tmp / "snapshots").is_dir():
        fsync_dir(tmp / "snapshots")


def _check_restored(tmp: Path, name: str, info: dict[str, Any]) -> None:
    """The copied store opens, passes `integrity_check` and holds what backup.json says; the
    manifest gets the new name and a new id."""
    try:
        manifest = read_manifest(tmp)
        store = Store(tmp, int(manifest["dim"]))
        try:
            problems = store.integrity_check()
            state, count = store.state(), store.count()
        finally:
            store.close()
    except VPError as e:
        raise CorruptBackup(f"backup {info['id']!r} does not open: {e.detail}") from e
    if problems:
        raise CorruptBackup(f"backup {info['id']!r}: store fails integrity_check ({problems[0]})")
    if (state[0], count) != (info["seq"], info["count"]):
        raise CorruptBackup(
            f"backup {info['id']!r}: store holds seq {state[0]} / {count} documents, "
            f"backup.json says seq {info['seq']} / {info['count']}"
        )
    fields = {k: v for k, v in manifest.items() if k != "format_version"}
    write_manifest(tmp, {**fields, "name": name, "id": uuid.uuid4().hex})
