"""Documents: bad-document detection (pure) and directory listing as a ConfigMap volume lays it out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentfleet_runtime.ingest.documents import (
    Document,
    Failure,
    binary_reason,
    html_to_text,
    list_directory,
    list_urls,
    parse_document,
    read_file,
)

LIMIT = 1000


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty document"),
        (b" \n\t\n", "empty document (whitespace only)"),
        (b"x" * (LIMIT + 1), "too large: more than 1000 bytes"),
        (b"%PDF-1.7 ...", "binary content (PDF)"),
        (b"\x89PNG\r\n\x1a\nrest", "binary content (PNG image)"),
        (b"PK\x03\x04zip", "binary content (ZIP archive (docx/xlsx/jar?))"),
        (b"text\x00with nul", "binary content (NUL bytes)"),
        (bytes([1, 2, 3, 4, 5, 6]) + b"abcdefgh" * 2, "binary content (6 control bytes in the first 22)"),
        ("caf\u00e9".encode("latin-1"), "bad encoding: not UTF-8 (byte 3: unexpected end of data)"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    assert parse_document("d", data, LIMIT) == Failure("d", reason)


def test_good_text_in_its_encodings() -> None:
    assert parse_document("d", "caf\u00e9\r\nline".encode(), LIMIT) == Document("d", "caf\u00e9\nline")
    assert parse_document("d", b"\xef\xbb\xbfbom", LIMIT).text == "bom"  # type: ignore[union-attr]
    assert parse_document("d", "utf16 \u00e9".encode("utf-16"), LIMIT).text == "utf16 \u00e9"  # type: ignore[union-attr]
    assert binary_reason(b"tabs\tand\nnewlines\r\n\x0cformfeed") is None


def test_html_becomes_visible_text() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body><h1>Head</h1><p>One &amp; "
        "two.</p><script>x()</script><ul><li>a</li></ul></body></html>"
    )
    assert html_to_text(html) == "# Head\n\nOne & two.\n\n- a"
    doc = parse_document("page", html.encode(), 10_000, content_type="text/html; charset=utf-8")
    assert isinstance(doc, Document) and doc.text.startswith("# Head")
    assert parse_document("page.html", html.encode(), 10_000).text.startswith("# Head")  # type: ignore[union-attr]


# The shapes below are DocBook's, as the PostgreSQL manual's HTML has them (postgresql-doc-15).
DOCBOOK_NAV = (
    '<div class="navheader"><table width="100%" summary="Navigation header"><tr><th colspan="5" align="center">20.5. '
    "Write Ahead Log</th></tr>"
    '<tr><td><a accesskey="p" href="prev.html">Prev</a></td><td><a href="up.html">Up</a></td></tr></table><hr /></div>'
)


def test_docbook_headings_and_settings_survive_and_navigation_does_not() -> None:
    html = (
        "<html><head><title>20.5. Write Ahead Log</title></head><body>"
        + DOCBOOK_NAV
        + '<div class="sect1"><div class="titlepage"><div><div>'
        '<h2 class="title">20.5. Write Ahead Log</h2></div></div></div><div class="toc"><dl class="toc"><dt><span '
        'class="sect2">'
        '<a href="#S">20.5.1. Settings</a></span></dt></dl></div><div class="sect2"><div '
        'class="titlepage"><div><div><h3 class="title">'
        '20.5.2. Checkpoints</h3></div></div></div><div class="variablelist"><dl class="variablelist"><dt '
        'id="GUC-CHECKPOINT-TIMEOUT">'
        '<span class="term"><code class="varname">checkpoint_timeout</code> (<code class="type">integer</code>)\n     '
        ' <a class="indexterm"></a>\n'
        "      </span></dt><dd><p>\n        Longest time between two checkpoints.\n        The default is five "
        'minutes (<code class="literal">5min</code>).\n'
        '       </p></dd></dl></div></div></div><div class="navfooter"><a href="next.html">Next</a></div></body></html>'
    )
    text = html_to_text(html)
    assert text == (
        "## 20.5. Write Ahead Log\n\n### 20.5.2. Checkpoints\n\n"
        # the setting's name on the line above its definition, one paragraph: one chunk holds both
        "checkpoint_timeout (integer)\nLongest time between two checkpoints. The default is five minutes (5min)."
    )
    assert (
        "Prev" not in text and "Next" not in text and "20.5.1. Settings" not in text
    )  # navigation and the table of contents


def test_docbook_table_keeps_rows_and_header() -> None:
    html = (
        '<div class="table"><p class="title"><strong>Table 8.2. Numeric Types</strong></p><div class="table-contents">'
        '<table class="table" border="1"><colgroup><col class="col1" /><col class="col2" '
        "/></colgroup><thead><tr><th>Name</th><th>Storage Size</th>"
        '</tr></thead><tbody><tr><td><code class="type">smallint</code></td><td>2 bytes</td></tr><tr><td><code '
        'class="type">double precision</code>'
        "</td><td>8 "
        "<em>bytes</em></td></tr><tr><td>a|b</td><td><p>one</p><p>two</p></td></tr></tbody></table></div></div><p>After.</p>"
    )
    assert html_to_text(html) == (
        "Table 8.2. Numeric Types\n\n| Name | Storage Size |\n|---|---|\n| smallint | 2 bytes |\n| double "
        "precision | 8 bytes |\n| a\\|b | one two |\n\nAfter."
    )


def test_docbook_code_keeps_lines_and_indentation() -> None:
    html = (
        '<div class="refsynopsisdiv"><h2>Synopsis</h2><pre class="synopsis">\nVACUUM [ FULL ] [ <em '
        'class="replaceable"><code>table_name</code></em> ]\n\n'
        'where <em>option</em> can be one of:\n\n    FULL [ <em class="replaceable"><code>boolean</code></em> ]\n    '
        "PARALLEL <em>integer</em>\n</pre>"
        "<p>VACUUM   reclaims\n storage.</p></div>"
    )
    assert html_to_text(html) == (
        "## Synopsis\n\n```\nVACUUM [ FULL ] [ table_name ]\n\nwhere option can be one of:\n\n    FULL [ boolean ]\n  "
        "  PARALLEL integer\n```\n\n"
        "VACUUM reclaims storage."
    )


def test_extracted_manual_page_chunks_with_its_heading_and_table_rows() -> None:
    from agentfleet_runtime.ingest.chunking import chunk_text

    html = (
        "<h3>8.1.1. Integer Types</h3><table><tr><th>Name</th><th>Size</th></tr>"
        + "".join(f"<tr><td>type{i}</td><td>{i} bytes</td></tr>" for i in range(40))
        + "</table>"
    )
    words = lambda texts: [len(t.split()) for t in texts]  # noqa: E731 - a whitespace tokenizer is enough here
    chunks = [t for t, _ in chunk_text(html_to_text(html), words, max_tokens=40)]
    assert chunks[0].startswith("### 8.1.1. Integer Types")
    # every row is whole in some chunk: no row is cut between its name and its size
    for i in range(40):
        assert any(f"| type{i} | {i} bytes |" in c for c in chunks), i


def _configmap_volume(root: Path, files: dict[str, bytes]) -> None:
    """The layout the kubelet makes: ..<timestamp>/ holds the keys, ..data links to it, keys link through ..data."""
    stamp = root / "..2026_11_21_10_00_00.123"
    stamp.mkdir(parents=True)
    for k, v in files.items():
        (stamp / k).write_bytes(v)
    os.symlink(stamp.name, root / "..data")
    for k in files:
        os.symlink(f"..data/{k}", root / k)


def test_configmap_volume_lists_keys_once_and_attaches_sidecars(tmp_path: Path) -> None:
    _configmap_volume(tmp_path, {"a.md": b"A.", "b.txt": b"B.", "a.md.meta.json": b'{"tenant": "acme"}'})
    refs = list_directory(tmp_path)
    assert [r.id for r in refs] == ["a.md", "b.txt"]
    assert refs[0].meta_location and refs[1].meta_location is None
    doc = read_file(refs[0], LIMIT)
    assert doc == Document("a.md", "A.", {"tenant": "acme"})


def test_pvc_tree_is_read_recursively_and_hidden_entries_skipped(tmp_path: Path) -> None:
    (tmp_path / "guide" / "deep").mkdir(parents=True)
    (tmp_path / "guide" / "deep" / "x.md").write_text("X.")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("no")
    (tmp_path / ".hidden.md").write_text("no")
    (tmp_path / "top.txt").write_text("T.")
    assert [r.id for r in list_directory(tmp_path)] == ["guide/deep/x.md", "top.txt"]


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    (tmp_path / "big.md").write_bytes(b"a" * 5000)
    ref = list_directory(tmp_path)[0]
    assert read_file(ref, LIMIT) == Failure("big.md", "too large: 5000 bytes, the limit is 1000")


def test_bad_sidecar_fails_only_its_document(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("A.")
    (tmp_path / "a.md.meta.json").write_text("[1, 2]")
    f = read_file(list_directory(tmp_path)[0], LIMIT)
    assert isinstance(f, Failure) and "not a JSON object" in f.reason


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_directory(tmp_path / "nope")


def test_url_lists_drop_blanks_comments_and_duplicates() -> None:
    refs = list_urls(["https://a/x", "", "# comment", "https://a/x", " https://b/y "])
    assert [r.id for r in refs] == ["https://a/x", "https://b/y"]
