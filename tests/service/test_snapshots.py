"""Backups over HTTP (service/routers/snapshots.py): create, list, restore, delete, and the
refusals. The round trip under concurrent writes and damaged backups are tested in
tests/reliability/test_storage_backup.py."""

from __future__ import annotations

from .conftest import RecordingClient, assert_error


def test_backup_list_restore_delete(docs: RecordingClient) -> None:
    r = docs.post("/v1/collections/docs/backup")
    assert r.status_code == 201, r.text
    backup = r.json()
    assert backup["collection"] == "docs" and backup["count"] == 4 and len(backup["checksum"]) == 64
    listed = docs.get("/v1/collections/docs/backups").json()["backups"]
    assert [b["name"] for b in listed] == [backup["name"]]
    r = docs.post("/v1/collections/restore", json={"backup": backup["name"], "name": "copy"})
    assert r.status_code == 201 and r.json()["count"] == 4, r.text
    hits = docs.post("/v1/collections/copy/search", json={"query": "the cat sat", "k": 1}).json()
    assert hits["hits"][0]["id"] == "cat"
    assert_error(
        docs.post("/v1/collections/restore", json={"backup": backup["name"], "name": "copy"}),
        409,
        "collection_exists",
    )
    r = docs.delete(f"/v1/collections/docs/backups/{backup['name']}")
    assert r.status_code == 200 and r.json() == {"name": backup["name"], "deleted": True}
    assert docs.get("/v1/collections/docs/backups").json()["backups"] == []


def test_backup_refusals(docs: RecordingClient) -> None:
    assert_error(docs.post("/v1/collections/nope/backup"), 404, "collection_not_found")
    assert_error(
        docs.post("/v1/collections/restore", json={"backup": "nope", "name": "x"}),
        404,
        "backup_not_found",
    )
    for name in ("../docs", "/etc", ".backups"):  # a backup is named, never a path
        r = docs.post("/v1/collections/restore", json={"backup": name, "name": "x"})
        assert_error(r, 422, "invalid_input", "backup")
    r = docs.post("/v1/collections/restore", json={"backup": "a", "name": "x", "url": "http://x"})
    assert_error(r, 422, "invalid_input")
    assert_error(docs.delete("/v1/collections/docs/backups/nope"), 404, "backup_not_found")
