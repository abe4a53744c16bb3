"""The engine: named collections in a data directory, and the embedders they use.

One `Engine` is shared by the service and every batch job. Collections open lazily and stay
open; a collection created, rebuilt or dropped by another process is noticed on the next call.
Backups live in `<data_dir>/.backups/<id>/` (indexer/backup.py has the format).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import backup as backups
from .collection import Collection
from .embed import Embedder, lazy_embedder
from .errors import (
    BackupNotFound,
    CollectionExists,
    CollectionNotFound,
    EmbedderMismatch,
    InvalidInput,
    SpecMismatch,
    VPError,
)
from .files import fsync_dir, os_error
from .index import set_threads, validate_spec
from .passages import Chunking
from .settings import Settings
from .store import NAME_RE, Store, read_manifest, write_manifest

BACKUPS = ".backups"
# leftovers of a killed create / restore / backup are removed once surely abandoned
STALE_TEMP_S = 3600.0


class Engine:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.data_dir = Path(self.settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        set_threads(self.settings.faiss_threads)
        self._open: dict[str, tuple[int, Collection]] = {}  # name -> (store inode, collection)
        self._lock = threading.Lock()
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """Folders a killed process left behind: a dropped collection's trash (always safe to
        delete) and half-made collections or backups (after an hour: surely abandoned). They
        are hidden (dot names), so they never block start-up either way."""
        if not os.access(self.data_dir, os.W_OK):
            return
        now = time.time()
        for folder in (self.data_dir, self.data_dir / BACKUPS):
            for path in folder.glob(".*.*-*") if folder.is_dir() else []:
                kind = path.name.rsplit("-", 1)[0].rsplit(".", 1)[-1]
                old = now - path.stat().st_mtime > STALE_TEMP_S
                if kind == "dropped" or (kind in ("creating", "restoring", "partial") and old):
                    shutil.rmtree(path, ignore_errors=True)

    # ---- embedders ----------------------------------------------------------------------------
    def embedder(self, name: str | None = None) -> Embedder:
        """The named embedder (default: the configured one), loaded once per process. A model
        whose files give its dim loads on first use (the service starts that right after it is
        ready), so collections open without waiting for it."""
        return lazy_embedder(
            name or self.settings.embedder,
            self.settings.embed_threads,
            self.settings.embed_batch_size,
        )

    # ---- collections --------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(
                f"collection name {name!r} must be 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit",
                field="name",
            )
        return self.data_dir / name

    def create_collection(
        self,
        name: str,
        metric: str = "cosine",
        index: str = "flat",
        params: dict[str, Any] | None = None,
        embedder: str | None = None,
        dim: int | None = None,
        exist_ok: bool = False,
        keyword_index: bool = True,
        chunking: dict[str, Any] | bool | None = None,
    ) -> Collection:
        """Create a collection. Without `dim` it embeds texts with `embedder` (default: the
        configured one); with `dim` and no embedder it stores vectors only. Texts get a BM25
        keyword index unless `keyword_index` is false; `chunking` (true, or {"max_tokens",
        "overlap"}) stores texts longer than the model takes as passages."""
        path = self._path(name)
        params = dict(params or {})
        validate_spec(index, metric, params)
        if dim is not None and (not isinstance(dim, int) or not 1 <= dim <= 65536):
            raise InvalidInput("dim must be an integer in [1, 65536]", field="dim")
        emb_name: str | None
        if dim is not None and embedder is None:
            emb_name = None
        else:
            emb = self.embedder(embedder)
            emb_name = emb.name
            if dim is not None and dim != emb.dim:
                raise InvalidInput(
                    f"dim {dim} does not match embedder {emb.name} ({emb.dim})", field="dim"
                )
            dim = emb.dim
        if not isinstance(keyword_index, bool):
            raise InvalidInput("keyword_index must be true or false", field="keyword_index")
        chunks: dict[str, int] | None = None
        if chunking not in (None, False):
            if emb_name is None:
                raise InvalidInput(
                    "chunking needs an embedder (a collection of vectors has no texts to split)",
                    field="chunking",
                )
            model_max = int(getattr(self.embedder(emb_name), "max_tokens", 256))
            chunks = Chunking.parse(chunking, model_max).to_json()
        manifest = {
            "name": name,
            "metric": metric,
            "index": index,
            "params": params,
            "embedder": emb_name,
            "dim": dim,
            "id": uuid.uuid4().hex,
            "keyword_index": keyword_index,
        }
        if chunks is not None:
            manifest["chunking"] = chunks
        if path.exists():
            if exist_ok:
                col = self.collection(name)
                self._check_same(col, manifest)
                return col
            raise CollectionExists(f"collection {name!r} already exists", field="name")
        tmp = self.data_dir / f".{name}.creating-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            write_manifest(tmp, manifest)
            Store.initialise(tmp)
            fsync_dir(tmp)
            try:
                os.rename(tmp, path)  # atomic; fails if another creator won the race
            except OSError:
                raise CollectionExists(
                    f"collection {name!r} already exists", field="name"
                ) from None
            fsync_dir(self.data_dir)
        except OSError as e:
            raise os_error(e, f"creating collection {name!r}") from e
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return self.collection(name)

    @staticmethod
    def _check_same(col: Collection, want: dict[str, Any]) -> None:
        for key in ("metric", "index", "embedder", "dim"):
            if want[key] != col.manifest.get(key):
                err = EmbedderMismatch if key in ("embedder", "dim") else SpecMismatch
                raise err(
                    f"collection {col.name!r} exists with {key}={col.manifest.get(key)!r}, "
                    f"not {want[key]!r}",
                    field=key,
                )
        for key, default in (("keyword_index", True), ("chunking", None)):
            if want.get(key, default) != col.manifest.get(key, default):
                raise SpecMismatch(
                    f"collection {col.name!r} exists with {key}="
                    f"{col.manifest.get(key, default)!r}, not {want.get(key, default)!r}",
                    field=key,
                )

    def collection(self, name: str, embedder: str | None = None) -> Collection:
        """An open collection. If `embedder` is given it must be the collection's own."""
        path = self._path(name)
        if (path / "shards.json").is_file():  # sharded by `index build --ray`: indexer/shards.py
            return self._open_sharded(name, path)
        try:
            inode = (path / "store.sqlite").stat().st_ino
        except FileNotFoundError:
            self._forget(name)
            raise CollectionNotFound(f"no collection named {name!r}", field="name") from None
        with self._lock:
            cached = self._open.get(name)
            if cached is not None and cached[0] == inode:
                col = cached[1]
            else:
                if cached is not None:  # dropped and re-created elsewhere: reopen
                    cached[1].close()
                col = self._open_collection(path)
                self._open[name] = (inode, col)
        if embedder is not None and col.embedder_name is not None:
            want = self.embedder(embedder).name
            if want != col.embedder_name:
                raise EmbedderMismatch(
                    f"collection {name!r} was built with embedder {col.embedder_name!r}, "
                    f"not {want!r}",
                    field="embedder",
                )
        return col

    def _open_collection(self, path: Path) -> Collection:
        manifest = read_manifest(path, verify=False)  # a wrong embedder or dim says so first
        emb: Embedder | None = None
        if manifest.get("embedder"):
            emb = self.embedder(manifest["embedder"])
            if emb.dim != int(manifest["dim"]):
                raise EmbedderMismatch(
                    f"collection {path.name!r} has dim {manifest['dim']} but embedder "
                    f"{emb.name!r} gives {emb.dim}",
                    field="embedder",
                )
        return Collection(path, emb, self.settings.write_lock_timeout_s)

    def _open_sharded(self, name: str, path: Path) -> Collection:
        from .shards import ShardedCollection

        inode = (path / "shards.json").stat().st_ino  # rewritten by each build: reopen then
        with self._lock:
            cached = self._open.get(name)
            if cached is None or cached[0] != inode:
                if cached is not None:
                    cached[1].close()
                cached = (inode, ShardedCollection.open(path, self._open_collection))
                self._open[name] = cached
        return cached[1]

    def _forget(self, name: str) -> None:
        with self._lock:
            cached = self._open.pop(name, None)
        if cached is not None:
            cached[1].close()

    def list_collections(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.data_dir.iterdir()):
            if path.name.startswith(".") or not (
                (path / "manifest.json").exists() or (path / "shards.json").exists()
            ):
                continue
            # one damaged collection must not hide the others (it reports when opened by name)
            with contextlib.suppress(VPError):
                out.append(self.collection(path.name).describe())
        return out

    def drop_collection(self, name: str) -> None:
        """Drop a collection (a sharded one with all of its shards), atomically."""
        path = self._path(name)
        if not ((path / "manifest.json").exists() or (path / "shards.json").is_file()):
            raise CollectionNotFound(f"no collection named {name!r}", field="name")
        self._forget(name)
        trash = self.data_dir / f".{name}.dropped-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, trash)  # atomic: readers see the collection or nothing
            fsync_dir(self.data_dir)
        except OSError as e:
            raise os_error(e, f"dropping collection {name!r}") from e
        shutil.rmtree(trash, ignore_errors=True)

    # ---- backups ------------------------------------------------------------------------------
    @property
    def backups_dir(self) -> Path:
        return self.data_dir / BACKUPS

    def backup(self, name: str, dest: Path | None = None) -> dict[str, Any]:
        """Back up a collection to the new folder `dest` (default: a new id under
        `<data_dir>/.backups/`); writers go on meanwhile. Returns the backup's description."""
        col = self.collection(name)
        col.sync()
        if dest is None:
            dest = self.backups_dir / backups.new_backup_id(name)
        return col.backup(dest)

    def _backup_path(self, backup_id: str) -> Path:
        if not isinstance(backup_id, str) or not backups.ID_RE.match(backup_id):
            raise InvalidInput(f"backup name {backup_id!r} is not valid", field="backup")
        path = self.backups_dir / backup_id
        if not (path / backups.BACKUP_FILE).is_file():
            raise BackupNotFound(f"no backup named {backup_id!r}", field="backup")
        return path

    def list_backups(self, name: str | None = None) -> list[dict[str, Any]]:
        """Backups under `<data_dir>/.backups/` (of collection `name`), oldest first. Damaged
        ones are left out here; restoring one by name says what is wrong with it."""
        found = []
        folders = sorted(self.backups_dir.iterdir()) if self.backups_dir.is_dir() else []
        for path in folders:
            if path.name.startswith("."):
                continue
            with contextlib.suppress(VPError):
                info = backups.read_info(path)
                if name is None or info["collection"] == name:
                    found.append(backups.describe(info))
        return sorted(found, key=lambda b: (b["creation_time"], b["name"]))

    def delete_backup(self, backup_id: str) -> None:
        path = self._backup_path(backup_id)
        trash = self.backups_dir / f".{backup_id}.dropped-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, trash)
        except OSError as e:
            raise os_error(e, f"deleting backup {backup_id!r}") from e
        shutil.rmtree(trash, ignore_errors=True)

    def restore(self, src: Path, name: str) -> Collection:
        """Restore the backup folder `src` as the new collection `name`, every checksum
        verified before anything is opened."""
        path = self._path(name)
        if path.exists():
            raise CollectionExists(f"collection {name!r} already exists", field="name")
        if not (Path(src) / backups.BACKUP_FILE).is_file():
            raise BackupNotFound(f"no backup at {src}", field="backup")
        backups.restore_collection(Path(src), path)
        return self.collection(name)

    def restore_backup(self, backup_id: str, name: str) -> Collection:
        """Restore a backup from `<data_dir>/.backups/` by its name."""
        return self.restore(self._backup_path(backup_id), name)

    def close(self) -> None:
        with self._lock:
            cols = [c for _, c in self._open.values()]
            self._open.clear()
        for col in cols:
            with contextlib.suppress(Exception):
                col.snapshot()
            col.close()
