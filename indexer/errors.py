"""The engine's exception tree. Each error carries the HTTP status a client should see, so the
service needs one handler and routes need no try/except."""

from __future__ import annotations


class VPError(Exception):
    """Base of every error the engine raises on purpose."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(VPError):
    """The request is well formed but its values are not acceptable (names the field)."""

    status = 422
    code = "invalid_input"


class InvalidFilter(InvalidInput):
    code = "invalid_filter"


class DimensionMismatch(InvalidInput):
    code = "dimension_mismatch"


class CollectionNotFound(VPError):
    status = 404
    code = "collection_not_found"


class DocumentNotFound(VPError):
    status = 404
    code = "document_not_found"


class TermNotFound(VPError):
    status = 404
    code = "term_not_found"


class CollectionExists(VPError):
    status = 409
    code = "collection_exists"


class EmbedderMismatch(VPError):
    """A collection was built with another embedder (or dim) than the one asked for."""

    status = 409
    code = "embedder_mismatch"


class SpecMismatch(EmbedderMismatch):
    """A collection exists with another metric or index kind than the one asked for."""

    code = "spec_mismatch"


class CollectionBusy(VPError):
    """Another writer holds the collection (e.g. a rebuild in another process)."""

    status = 409
    code = "collection_busy"


class ModelUnavailable(VPError):
    """The embedding model could not be loaded (the service's fault, not the request's): texts
    cannot be embedded until it is fixed and the service restarted; vector requests still work."""

    status = 503
    code = "model_unavailable"


class StorageError(VPError):
    """The store could not persist a write; nothing was acknowledged."""

    status = 503
    code = "storage_error"


class StorageFull(StorageError):
    """The disk is full (ENOSPC): nothing was stored; writes work again once space is freed."""

    status = 507
    code = "storage_full"


class ReadOnlyStorage(StorageError):
    """Writes are refused: the data directory is read-only, or an I/O error on the commit path
    made the collection read-only until restart (a failed fsync cannot be retried safely)."""

    status = 503
    code = "read_only"


class BackupNotFound(VPError):
    status = 404
    code = "backup_not_found"


class CorruptBackup(VPError):
    """A backup fails its checksums or checks: nothing was restored."""

    status = 422
    code = "corrupt_backup"


class CorruptCollection(VPError):
    """Files on disk fail their checks and cannot be recovered automatically."""

    status = 500
    code = "corrupt_collection"
