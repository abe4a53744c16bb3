"""Record readers: every format yields the documents it holds and names the line of every record
it cannot use."""

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexer.readers import (
    BadRecord,
    Fields,
    InputError,
    Record,
    count_hint,
    detect_format,
    read_records,
)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def good(items: list) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


def bad(items: list) -> dict[int, str]:
    return {i.line: i.reason for i in items if isinstance(i, BadRecord)}


# ---- JSONL ----------------------------------------------------------------------------------
def test_jsonl_reads_records_with_other_fields_as_metadata(tmp_path: Path) -> None:
    p = write(
        tmp_path / "in.jsonl",
        '{"id": "a", "text": "alpha", "year": 2020, "tags": ["x"]}\n'
        "\n"
        '{"id": "b", "text": "beta"}\n',
    )
    items = list(read_records(p))
    assert items == [
        Record(1, "a", "alpha", {"year": 2020, "tags": ["x"]}, str(p)),
        Record(3, "b", "beta", {}, str(p)),
    ]


def test_jsonl_bad_lines_are_reported_with_their_line_number(tmp_path: Path) -> None:
    p = write(
        tmp_path / "in.jsonl",
        b"\n".join(
            [
                b'{"id": "ok", "text": "fine"}',
                b'{"id": "x", "text": oops}',  # 2 malformed
                b'{"id": "y"}',  # 3 no text
                b'{"id": "z", "text": "   "}',  # 4 empty text
                b'{"id": 7, "text": "numeric id"}',  # 5
                b'["a", "list"]',  # 6
                b'{"id": "n", "text": "t", "score": NaN}',  # 7
                b'{"id": "u", "text": "\xff\xfe"}',  # 8 not UTF-8
                b'{"id": "t", "text": 12}',  # 9 text not a string
                b'{"id": "", "text": "empty id"}',  # 10
            ]
        ),
    )
    items = list(read_records(p))
    assert [r.id for r in good(items)] == ["ok"]
    reasons = bad(items)
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert reasons[2].startswith("malformed JSON at column")
    assert "missing text field 'text'" in reasons[3]
    assert "empty text" in reasons[4]
    assert "must be a string, got int" in reasons[5]
    assert "expected a JSON object" in reasons[6]
    assert "NaN" in reasons[7]
    assert "UTF-8" in reasons[8]
    assert str(BadRecord(2, "why", "in.jsonl")) == "in.jsonl:2: why"


def test_jsonl_field_choices(tmp_path: Path) -> None:
    p = write(
        tmp_path / "corpus.jsonl",
        '{"_id": "d1", "title": "Cats", "text": "purr", "year": 1, "lang": "en"}\n'
        '{"_id": "d2", "text": "no title here", "year": 2}\n',
    )
    fields = Fields.parse("_id", "title,text", "year")
    items = list(read_records(p, fields=fields))
    assert [(r.id, r.text, r.metadata) for r in good(items)] == [
        ("d1", "Cats purr", {"year": 1}),
        ("d2", "no title here", {"year": 2}),
    ]
    none = list(read_records(p, fields=Fields.parse("_id", "text", "")))
    assert all(r.metadata == {} for r in good(none))


def test_jsonl_without_ids_uses_stem_and_line_but_an_asked_for_id_field_is_required(
    tmp_path: Path,
) -> None:
    p = write(tmp_path / "notes.jsonl", '{"text": "one"}\n\n{"text": "two"}\n')
    assert [r.id for r in good(list(read_records(p)))] == ["notes:1", "notes:3"]
    items = list(read_records(p, fields=Fields.parse("key", None, None)))
    assert bad(items) == {1: "missing id field 'key'", 3: "missing id field 'key'"}


def test_gzip_jsonl_is_read_as_it_streams(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl.gz"
    with gzip.open(p, "wt") as f:
        f.write('{"id": "a", "text": "zipped"}\n{"id": "b", "text": broken}\n')
    items = list(read_records(p))
    assert [r.id for r in good(items)] == ["a"]
    assert list(bad(items)) == [2]
    assert count_hint(p) == 2


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.text(max_size=40).filter(str.strip),
            st.dictionaries(
                st.text(max_size=5).filter(lambda k: k not in ("id", "text")),
                st.integers() | st.text(max_size=5),
                max_size=3,
            ),
        ),
        unique_by=lambda t: t[0],
        max_size=8,
    )
)
def test_jsonl_round_trips_what_json_dumps_wrote(docs: list) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.jsonl"
        p.write_text("".join(json.dumps({"id": i, "text": t, **m}) + "\n" for i, t, m in docs))
        items = list(read_records(p))
    assert [(r.id, r.text, r.metadata) for r in items] == [(i, t.strip(), m) for i, t, m in docs]


# ---- CSV ------------------------------------------------------------------------------------
def test_csv_reads_rows_and_turns_plain_numbers_into_numbers(tmp_path: Path) -> None:
    p = write(
        tmp_path / "in.csv",
        "\ufeffid,text,year,zip,score\n"
        'a,"hello, world",2020,02134,0.5\n'
        'b,"two\nlines",1999,10001,abc\n'
        "c,too,many,fields,here,x\n"
        "d,,2000,1,1\n",
    )
    items = list(read_records(p))
    assert [(r.line, r.id, r.text, r.metadata) for r in good(items)] == [
        (2, "a", "hello, world", {"year": 2020, "zip": "02134", "score": 0.5}),
        (3, "b", "two\nlines", {"year": 1999, "zip": 10001, "score": "abc"}),
    ]
    reasons = bad(items)
    assert reasons[5] == "expected 5 fields, got 6"  # line numbers count the quoted newline
    assert "empty text" in reasons[6]


def test_csv_without_the_text_column_is_an_input_error(tmp_path: Path) -> None:
    p = write(tmp_path / "in.csv", "id,body\na,hello\n")
    with pytest.raises(InputError, match="no column 'text'"):
        list(read_records(p))
    items = list(read_records(p, fields=Fields.parse(None, "body", None)))
    assert [r.text for r in good(items)] == ["hello"]


def test_tsv_and_gzip_csv(tmp_path: Path) -> None:
    t = write(tmp_path / "in.tsv", "id\ttext\tsource\nx\tone, two\tweb\n")
    assert [(r.id, r.text, r.metadata) for r in good(list(read_records(t)))] == [
        ("x", "one, two", {"source": "web"})
    ]
    g = tmp_path / "in.csv.gz"
    with gzip.open(g, "wt") as f:
        f.write("id,text\ny,zipped csv\n")
    assert [r.text for r in good(list(read_records(g)))] == ["zipped csv"]
    assert count_hint(g) == 1


# ---- plain text and folders -----------------------------------------------------------------
def test_text_is_one_document_per_non_blank_line(tmp_path: Path) -> None:
    p = write(tmp_path / "lines.txt", "first line\n\n   \nsecond line\n")
    items = list(read_records(p))
    assert [(r.id, r.text, r.metadata) for r in items] == [
        ("lines:1", "first line", {"path": "lines.txt", "line": 1}),
        ("lines:4", "second line", {"path": "lines.txt", "line": 4}),
    ]
    assert [r.id for r in read_records(p, id_prefix="doc")] == ["doc:1", "doc:4"]


def test_directory_is_one_document_per_txt_or_md_file(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    write(root / "a.txt", "apple\n")
    write(root / "sub" / "b.md", "# Banana\n\nyellow")
    write(root / "sub" / "c.py", "print('not a document')")
    write(root / ".git" / "d.txt", "hidden")
    write(root / "empty.md", "  \n")
    write(root / "latin1.txt", b"caf\xe9")
    items = list(read_records(root))
    assert [(r.id, r.text, r.metadata) for r in good(items)] == [
        ("a.txt", "apple", {"path": "a.txt"}),
        ("sub/b.md", "# Banana\n\nyellow", {"path": "sub/b.md"}),
    ]
    assert sorted(str(b) for b in items if isinstance(b, BadRecord)) == [
        f"{root / 'empty.md'}: empty file",
        f"{root / 'latin1.txt'}: not valid UTF-8",
    ]
    assert count_hint(root) == 4


# ---- the input as a whole -------------------------------------------------------------------
def test_format_detection_and_unusable_inputs(tmp_path: Path) -> None:
    assert detect_format(Path("x.JSONL.gz")) == "jsonl"
    assert detect_format(Path("x.ndjson")) == "jsonl"
    assert detect_format(Path("x.md")) == "text"
    assert detect_format(tmp_path) == "dir"
    with pytest.raises(InputError, match="cannot tell the format"):
        detect_format(Path("x.parquet"))
    with pytest.raises(InputError, match="does not exist"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="is a directory"):
        read_records(tmp_path, "jsonl")
    with pytest.raises(InputError, match="format must be"):
        read_records(tmp_path, "xml")
