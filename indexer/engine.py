"""The engine: named collections in a data directory, and the embedders they use.

One `Engine` is shared by the service and every batch job. Collections open lazily and stay
open; a collection created, rebuilt or dropped by another process is noticed on the next call.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from .collection import Collection
from .embed import Embedder, load_embedder
from .errors import (
    CollectionExists,
    CollectionNotFound,
    EmbedderMismatch,
    InvalidInput,
    SpecMismatch,
    VPError,
)
from .index import set_threads, validate_spec
from .settings import Settings
from .store import NAME_RE, Store, fsync_dir, read_manifest, write_manifest


class Engine:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.data_dir = Path(self.settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        set_threads(self.settings.faiss_threads)
        self._open: dict[str, tuple[int, Collection]] = {}  # name -> (store inode, collection)
        self._lock = threading.Lock()

    # ---- embedders ----------------------------------------------------------------------------
    def embedder(self, name: str | None = None) -> Embedder:
        """The named embedder (default: the configured one), loaded once per process."""
        return load_embedder(
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
    ) -> Collection:
        """Create a collection. Without `dim` it embeds texts with `embedder` (default: the
        configured one); with `dim` and no embedder it stores vectors only."""
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
        manifest = {
            "name": name,
            "metric": metric,
            "index": index,
            "params": params,
            "embedder": emb_name,
            "dim": dim,
            "id": uuid.uuid4().hex,
        }
        if path.exists():
            if exist_ok:
                col = self.collection(name)
                self._check_same(col, manifest)
                return col
            raise CollectionExists(f"collection {name!r} already exists", field="name")
        tmp = self.data_dir / f".{name}.creating-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
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

    def collection(self, name: str, embedder: str | None = None) -> Collection:
        """An open collection. If `embedder` is given it must be the collection's own."""
        path = self._path(name)
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
        manifest = read_manifest(path)
        emb: Embedder | None = None
        if manifest.get("embedder"):
            emb = self.embedder(manifest["embedder"])
            if emb.dim != int(manifest["dim"]):
                raise EmbedderMismatch(
                    f"collection {path.name!r} has dim {manifest['dim']} but embedder "
                    f"{emb.name!r} gives {emb.dim}",
                    field="embedder",
                )
        return Collection(path, emb)

    def _forget(self, name: str) -> None:
        with self._lock:
            cached = self._open.pop(name, None)
        if cached is not None:
            cached[1].close()

    def list_collections(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.data_dir.iterdir()):
            if path.name.startswith(".") or not (path / "manifest.json").exists():
                continue
            # one damaged collection must not hide the others (it reports when opened by name)
            with contextlib.suppress(VPError):
                out.append(self.collection(path.name).describe())
        return out

    def drop_collection(self, name: str) -> None:
        path = self._path(name)
        if not (path / "manifest.json").exists():
            raise CollectionNotFound(f"no collection named {name!r}", field="name")
        self._forget(name)
        trash = self.data_dir / f".{name}.dropped-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)  # atomic: readers see the collection or nothing
        fsync_dir(self.data_dir)
        shutil.rmtree(trash, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            cols = [c for _, c in self._open.values()]
            self._open.clear()
        for col in cols:
            with contextlib.suppress(Exception):
                col.snapshot()
            col.close()
