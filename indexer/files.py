"""Durable files: publish atomically (temp file, fsync, rename, directory fsync), clean the temp
files of writers that died, and turn OS errors into the engine's errors."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
from pathlib import Path

from .errors import ReadOnlyStorage, StorageError, StorageFull

# temp files left by a killed writer: ".<target>.tmp-<pid>-<thread>"
TEMP_RE = re.compile(r"^\..+\.tmp-(\d+)-\d+$")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over the target, fsync the directory: a
    reader sees the old file or the new one, never a partial one, even after a crash."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete temp files whose writer died before renaming them (kill -9 mid-publish). Nothing
    reads them, so they never block an open; this only stops them piling up. A temp file of a
    live process (another writer mid-publish) is left alone."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for file in folder.iterdir():
        m = TEMP_RE.match(file.name)
        if m is None or _alive(int(m.group(1))):
            continue
        with contextlib.suppress(OSError):
            file.unlink()
            removed.append(file)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def os_error(e: OSError, what: str) -> StorageError:
    """The engine's error for a failed file operation (no path in the message: it reaches
    HTTP clients)."""
    reason = e.strerror or type(e).__name__
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"storage full: {what} failed ({reason}); free space and retry")
    if e.errno == errno.EROFS:
        return ReadOnlyStorage(f"{what} failed: the data directory is read-only")
    return StorageError(f"{what} failed: {reason}")
