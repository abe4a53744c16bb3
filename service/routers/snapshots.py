"""Backups of a collection over HTTP, shaped like Qdrant's snapshots API: creating one answers
`{name, creation_time, size, checksum}` (plus the `seq` and `count` it holds), a collection's
backups can be listed and deleted, and a backup is restored as a new collection by name.

The server names and places every backup (under `<data_dir>/.backups/`): a client never gives a
server path, and a restore never fetches a URL (Qdrant's recover-from-location is an SSRF door).
A restore verifies every checksum before anything is opened (indexer/backup.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field

from indexer.errors import BackupNotFound
from service.deps import EngineDep
from service.models import CollectionName, CollectionResponse, Request, Response

router = APIRouter(tags=["backups"])
BackupName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        examples=["articles-2026-01-31-12-00-00-3fa2b1"],
    ),
]


class BackupResponse(Response):
    name: str = Field(description="the backup's id, as returned when it was made")
    collection: str
    seq: int = Field(description="the collection's write sequence number the backup holds")
    count: int = Field(description="documents in the backup")
    creation_time: str = Field(description="UTC, ISO 8601")
    size: int = Field(description="bytes")
    checksum: str = Field(description="sha256 of the backup's manifest, which lists every file")


class BackupListResponse(Response):
    backups: list[BackupResponse]


class DeleteBackupResponse(Response):
    name: str
    deleted: bool = True


class RestoreRequest(Request):
    backup: BackupName = Field(description="a backup's name")
    name: CollectionName = Field(description="the new collection (must not exist)")


@router.post("/collections/{name}/backup", status_code=201)
def create_backup(name: str, engine: EngineDep) -> BackupResponse:
    """Back up a collection while writes go on: the backup holds the state after one write
    (`seq`). Answers 201 with the backup's name, size and checksum."""
    return BackupResponse(**engine.backup(name))


@router.get("/collections/{name}/backups")
def list_backups(name: str, engine: EngineDep) -> BackupListResponse:
    """The collection's backups, oldest first (also after the collection was dropped)."""
    return BackupListResponse(backups=[BackupResponse(**b) for b in engine.list_backups(name)])


@router.delete("/collections/{name}/backups/{backup}")
def delete_backup(name: str, backup: str, engine: EngineDep) -> DeleteBackupResponse:
    """Delete one of the collection's backups."""
    if not any(b["name"] == backup for b in engine.list_backups(name)):
        raise BackupNotFound(f"collection {name!r} has no backup {backup!r}", field="backup")
    engine.delete_backup(backup)
    return DeleteBackupResponse(name=backup)


@router.post("/collections/restore", status_code=201)
def restore_backup(req: RestoreRequest, engine: EngineDep) -> CollectionResponse:
    """Restore a backup as a new collection, after checking every file's checksum and the
    store's integrity (422 `corrupt_backup` if anything is off; nothing is created then)."""
    col = engine.restore_backup(req.backup, req.name)
    return CollectionResponse(**col.describe())
