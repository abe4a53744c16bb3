"""Record readers for batch jobs: files in, `Record`s (or `BadRecord`s, with their line) out.

Formats: JSONL, CSV/TSV (header row), plain text (one document per line) and a directory of
.txt/.md files (one document per file); `.gz` variants of the three file formats are read as they
stream. Readers never raise on bad data: a line that cannot become a document is yielded as a
`BadRecord` naming its line, so a job can report it and carry on. They do raise `InputError` when
the input as a whole is unusable (missing file, unknown format, no header).

Ids: JSONL/CSV take `--id-field` (default `id`); without it a record's id is `<file stem>:<line>`,
as for plain text, so a re-run over the same file finds the same ids. Duplicate ids within one
input are handled by the job (`jobs.dedupe`), not here.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import VPError

FORMATS = ("auto", "jsonl", "csv", "tsv", "text", "dir")
DIR_SUFFIXES = (".txt", ".md")
_SUFFIX_FORMAT = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
}
# a CSV cell that is a plain number becomes one (so {"year": {"$gte": 2020}} works); "02134"
# keeps its leading zero and stays a string, like a zip code should
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


class InputError(VPError):
    """The input as a whole cannot be read (missing, unreadable, unknown format)."""

    status = 400
    code = "bad_input"


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line where the record starts (0 for a file in a directory)
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the input file it came from, for messages


@dataclass(frozen=True)
class BadRecord:
    line: int
    reason: str
    source: str = ""

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.reason}"


Item = Record | BadRecord


@dataclass(frozen=True)
class Fields:
    """Which fields of a JSONL/CSV record make the document."""

    id: str | None = None  # None: "id" if present, else <stem>:<line>
    text: tuple[str, ...] = ("text",)  # several are joined with a space (title + text)
    metadata: tuple[str, ...] | None = None  # None: every other field

    @classmethod
    def parse(
        cls, id_field: str | None, text_field: str | None, metadata_fields: str | None
    ) -> Fields:
        text = tuple(f.strip() for f in (text_field or "text").split(",") if f.strip())
        if not text:
            raise InputError("--text-field needs at least one field name", field="text_field")
        meta = None
        if metadata_fields is not None:
            meta = tuple(f.strip() for f in metadata_fields.split(",") if f.strip())
        return cls(id_field, text, meta)


def detect_format(path: Path) -> str:
    """`auto` -> the format implied by the path (a directory, or the suffix before any .gz)."""
    if str(path) == "-":
        return "jsonl"
    if path.is_dir():
        return "dir"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    fmt = _SUFFIX_FORMAT.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"cannot tell the format of {path}: pass --format jsonl|csv|tsv|text|dir",
            field="format",
        )
    return fmt


def read_records(
    path: str | Path, fmt: str = "auto", fields: Fields | None = None, id_prefix: str | None = None
) -> Iterator[Item]:
    """Every record of the input, in order. `path` may be `-` for standard input."""
    path = Path(path)
    fields = fields or Fields()
    if fmt not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}", field="format")
    if str(path) != "-" and not path.exists():
        raise InputError(f"input {path} does not exist", field="input")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "dir":
        if not path.is_dir():
            raise InputError(f"input {path} is not a directory", field="input")
        return read_dir(path)
    if path.is_dir():
        raise InputError(f"input {path} is a directory: use --format dir", field="input")
    stem = id_prefix or _stem(path)
    source = "stdin" if str(path) == "-" else str(path)
    if fmt == "jsonl":
        return read_jsonl(_lines(path), fields, stem, source)
    if fmt in ("csv", "tsv"):
        return read_csv(_lines(path), fields, stem, source, "\t" if fmt == "tsv" else ",")
    return read_text(_lines(path), stem, source)


def _stem(path: Path) -> str:
    if str(path) == "-":
        return "stdin"
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def _open_binary(path: Path) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    try:
        f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by _lines
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}", field="input") from None
    head = f.peek(2)[:2] if isinstance(f, io.BufferedReader) else b""
    if head == b"\x1f\x8b":  # gzip magic, whatever the name says
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def _lines(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line number, text) per physical line; text is None when the line is not UTF-8."""
    f = _open_binary(path)
    try:
        for n, raw in enumerate(f, start=1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark (Excel writes one)
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield n, None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read {path}: {e}", field="input") from None
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _document(obj: dict[str, Any], fields: Fields, line: int, stem: str, source: str) -> Item:
    """The document a JSON object or CSV row describes, or why it cannot be one."""

    def bad(reason: str) -> BadRecord:
        return BadRecord(line, reason, source)

    id_key = fields.id or "id"
    if id_key in obj and obj[id_key] is not None:
        doc_id = obj[id_key]
        if not isinstance(doc_id, str):
            return bad(
                f"id field {id_key!r} must be a string, got {type(doc_id).__name__} "
                f"{json.dumps(doc_id)[:40]} (quote it)"
            )
        if not doc_id:
            return bad(f"id field {id_key!r} is empty")
    elif fields.id is not None:
        return bad(f"missing id field {fields.id!r}")
    else:
        doc_id = f"{stem}:{line}"
    parts = []
    for key in fields.text:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return bad(f"text field {key!r} must be a string, got {type(value).__name__}")
        if value.strip():
            parts.append(value.strip())
    if not any(key in obj for key in fields.text):
        return bad(f"missing text field {' or '.join(repr(k) for k in fields.text)}")
    if not parts:
        return bad(f"empty text in {' and '.join(repr(k) for k in fields.text)}")
    if fields.metadata is None:
        skip = {id_key, *fields.text}
        metadata = {k: v for k, v in obj.items() if k not in skip}
    else:
        metadata = {k: obj[k] for k in fields.metadata if k in obj}
    return Record(line, doc_id, " ".join(parts), metadata, source)


def read_jsonl(
    lines: Iterable[tuple[int, str | None]], fields: Fields, stem: str, source: str
) -> Iterator[Item]:
    """One JSON object per line; blank lines are skipped."""
    for n, text in lines:
        if text is None:
            yield BadRecord(n, "not valid UTF-8", source)
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"), parse_constant=_reject_constant)
        except json.JSONDecodeError as e:
            yield BadRecord(n, f"malformed JSON at column {e.colno}: {e.msg}", source)
            continue
        except ValueError as e:  # NaN / Infinity, refused by _reject_constant
            yield BadRecord(n, f"malformed JSON: {e}", source)
            continue
        if not isinstance(obj, dict):
            yield BadRecord(n, f"expected a JSON object, got {type(obj).__name__}", source)
            continue
        yield _document(obj, fields, n, stem, source)


def _cell(value: str) -> Any:
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        f = float(value)
        return f if math.isfinite(f) else value
    return value


def read_csv(
    lines: Iterable[tuple[int, str | None]],
    fields: Fields,
    stem: str,
    source: str,
    delimiter: str = ",",
) -> Iterator[Item]:
    """A header row, then one record per row (quoted cells may span lines). Numeric cells
    become numbers in the metadata; the id and text stay strings."""
    undecodable: set[int] = set()

    def texts() -> Iterator[str]:
        for n, text in lines:
            if text is None:
                undecodable.add(n)
                yield "\n"
            else:
                yield text

    reader = csv.reader(texts(), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return  # an empty file has no records
    except csv.Error as e:
        raise InputError(f"{source}:1: cannot read the CSV header: {e}", field="input") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise InputError(f"{source}:1: the first line must be a header row", field="input")
    wanted = [*fields.text, *([fields.id] if fields.id else [])]
    missing = [f for f in wanted if f not in header]
    if missing:
        raise InputError(
            f"{source}:1: no column {', '.join(map(repr, missing))} in the header "
            f"({', '.join(header)})",
            field="text_field" if missing[0] in fields.text else "id_field",
        )
    end = reader.line_num
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = reader.line_num
            yield BadRecord(start, f"malformed CSV: {e}", source)
            continue
        end = reader.line_num
        if any(n in undecodable for n in range(start, end + 1)):
            yield BadRecord(start, "not valid UTF-8", source)
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            yield BadRecord(start, f"expected {len(header)} fields, got {len(row)}", source)
            continue
        obj: dict[str, Any] = {}
        for key, value in zip(header, row, strict=True):
            keep_str = key == (fields.id or "id") or key in fields.text
            obj[key] = value if keep_str else _cell(value)
        yield _document(obj, fields, start, stem, source)


def read_text(lines: Iterable[tuple[int, str | None]], stem: str, source: str) -> Iterator[Item]:
    """One document per non-blank line; id `<stem>:<line>`, metadata {path, line}."""
    name = Path(source).name
    for n, text in lines:
        if text is None:
            yield BadRecord(n, "not valid UTF-8", source)
            continue
        text = text.strip()
        if text:
            yield Record(n, f"{stem}:{n}", text, {"path": name, "line": n}, source)


def dir_files(root: Path) -> list[Path]:
    """The .txt/.md files under `root`, sorted, skipping hidden files and folders."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and p.suffix.lower() in DIR_SUFFIXES:
            out.append(p)
    return sorted(out)


def read_dir(root: Path) -> Iterator[Item]:
    """One document per .txt/.md file; id = the relative path, metadata {"path": ...}."""
    for p in dir_files(root):
        rel = p.relative_to(root).as_posix()
        source = str(p)
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            yield BadRecord(0, "not valid UTF-8", source)
            continue
        except OSError as e:
            yield BadRecord(0, f"cannot read: {e.strerror}", source)
            continue
        if not text.strip():
            yield BadRecord(0, "empty file", source)
            continue
        yield Record(0, rel, text.strip(), {"path": rel}, source)


def count_hint(path: str | Path, fmt: str = "auto") -> int | None:
    """About how many records the input holds (lines or files), for a progress bar's ETA.
    None when it cannot be known cheaply (standard input)."""
    path = Path(path)
    if str(path) == "-":
        return None
    try:
        if fmt == "auto":
            fmt = detect_format(path)
        if fmt == "dir":
            return len(dir_files(path))
        f = _open_binary(path)
        try:
            n = sum(chunk.count(b"\n") for chunk in iter(_reader(f), b""))
        finally:
            f.close()
    except (OSError, EOFError, InputError, gzip.BadGzipFile):
        return None
    return max(n - (fmt in ("csv", "tsv")), 0)  # minus the header row


def _reader(f: IO[bytes]) -> Callable[[], bytes]:
    return lambda: f.read(1 << 20)
