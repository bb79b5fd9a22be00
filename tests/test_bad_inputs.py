"""A corpus of bad, odd and hostile files, made by the test: each is ingested or refused with a one-line reason,
the rest of the batch still goes in, and a refused file leaves the store exactly as it was."""

import codecs
import gzip
import json
import re

import pytest

from rag.documents.library import Library
from rag.retrieval.store import Store
from tests.conftest import cli_env, make_settings, run_cli
from tests.samples import POLICY, make_docx, make_image_only_pdf, make_pdf, make_zip

REJECTED = {
    "corrupt.pdf": "corrupt or truncated PDF",
    "truncated.pdf": "corrupt or truncated PDF|no text layer",
    "encrypted.pdf": "encrypted PDF",
    "scanned.pdf": "no text layer",
    "zero.txt": "empty file",
    "blank.md": "no text in the file",
    "binary-renamed.md": "binary content",
    "nul-bytes.txt": "binary content",
    "photo.png.txt": "PNG image",
    "photo.jpg": "JPEG image",
    "archive.gz.md": "gzip archive",
    "program.txt": "an executable",
    "zip-of-text.docx": "a ZIP archive, not a DOCX",
    "broken.docx": "corrupt ZIP container",
    "sheet.docx": "spreadsheet or presentation",
    "old-word.doc": "old Office",
    "database.md": "SQLite database",
    "only-script.html": "no text in the file",
    "too-large.txt": "file too large",
    "report.pdf": "corrupt or truncated PDF",  # a bad new version of a document already in the store
}
ADDED = {
    "pdf-renamed.txt": ("apples", "pdf"),
    "latin1.txt": ("Crème brûlée", "text"),
    "cp1252.txt": ("“smart quotes”", "text"),
    "utf16.txt": ("Grüße aus Köln", "text"),
    "utf8-bom.md": ("Überschrift", "markdown"),
    "one-huge-line.txt": ("lorem", "text"),
    "many-pages.pdf": ("tiny page 1999", "pdf"),
    "scripts.html": ("visible paragraph", "html"),
    "ctrlname.txt": ("control characters", "text"),
    "real.docx": ("boiler is serviced", "docx"),
    "mixed-pages.pdf": ("second page text", "pdf"),
    "dup.txt": ("first of two", "text"),
}


def build_corpus(folder):
    """At least 30 files; names on disk are what a filesystem allows (see the in-process test for the rest)."""
    pdf = make_pdf("Some apples and pears.", "More text on page two.")
    files = {
        "corrupt.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ngarbage",
        "truncated.pdf": pdf[: len(pdf) // 3],
        "encrypted.pdf": make_pdf("secret plans", password="hunter2"),
        "scanned.pdf": make_image_only_pdf(),
        "zero.txt": b"",
        "blank.md": b"  \n\n \t\n",
        "binary-renamed.md": bytes(range(256)) * 40,
        "nul-bytes.txt": b"text\x00with\x00nuls" * 100,
        "photo.png.txt": b"\x89PNG\r\n\x1a\n" + bytes(500),
        "photo.jpg": b"\xff\xd8\xff\xe0" + bytes(500),
        "archive.gz.md": gzip.compress(b"hello world" * 100),
        "program.txt": b"\x7fELF\x02\x01\x01" + bytes(500),
        "zip-of-text.docx": make_zip({"notes.txt": b"not a word document"}),
        "broken.docx": b"PK\x03\x04" + bytes(100),
        "sheet.docx": make_zip({"xl/workbook.xml": b"<workbook/>"}),
        "old-word.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500),
        "database.md": b"SQLite format 3\x00" + bytes(500),
        "only-script.html": b"<html><head><script>var a = 1;</script></head><body></body></html>",
        "too-large.txt": b"big text line\n" * 120_000,  # 1.7 MB, over the 1 MB cap of this test
        "report.pdf": b"%PDF-1.7 truncated",
        "pdf-renamed.txt": pdf,
        "latin1.txt": "Crème brûlée à la carte".encode("latin-1"),
        "cp1252.txt": "“smart quotes” – and a dash".encode("cp1252"),
        "utf16.txt": codecs.BOM_UTF16_LE + "Grüße aus Köln".encode("utf-16-le"),
        "utf8-bom.md": codecs.BOM_UTF8 + "# Überschrift\n\nText.".encode(),
        "one-huge-line.txt": ("lorem ipsum dolor sit amet " * 4000).encode(),  # 108 kB without a newline
        "many-pages.pdf": make_pdf(*[f"tiny page {i}" for i in range(2000)]),
        "scripts.html": (b"<html><head><script>alert('x')</script><style>p{}</style></head><body>"
                         b"<p>visible paragraph</p><iframe src='https://example.com'></iframe>"
                         b"<script>document.write('hidden')</script></body></html>"),
        "ctrl\x01\x1bname.txt": b"A name with control characters.",
        "real.docx": make_docx("The boiler is serviced every May."),
        "mixed-pages.pdf": make_pdf("first page text", " ", "second page text"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    (folder / "a" / "dup.txt").write_bytes(b"first of two files named dup.txt")
    (folder / "b" / "dup.txt").write_bytes(b"second of two files named dup.txt")
    (folder / ".hidden.md").write_bytes(b"hidden files are skipped")
    return len(files) + 2


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, ollama_url, bi_encoder):
    root = tmp_path_factory.mktemp("bad-inputs")
    settings = make_settings(root / "store", ollama_url, max_file_mb=1.0)
    env = cli_env(settings, RAG_MAX_FILE_MB="1")
    (root / "first").mkdir()
    (root / "first" / "report.pdf").write_bytes(make_pdf("The quarterly report, version one."))
    assert run_cli("ingest", str(root / "first"), env=env).returncode == 0
    before = snapshot(settings, bi_encoder)
    corpus = root / "corpus"
    corpus.mkdir()
    count = build_corpus(corpus)
    result = run_cli("ingest", str(corpus), env=env, timeout=1200)
    return settings, result, before, count


def snapshot(settings, bi_encoder):
    store = Store(settings, bi_encoder)
    try:
        chunks = {d.id: d.metadata["source"] for d in store.get_chunks()}
        return chunks, {r.name: r for r in store.list_records()}
    finally:
        store.close()


def outcomes(stdout):
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^(added|rejected|unchanged|replaced)\s+(.+?): (.*)$", line)
        assert match, f"not an outcome line: {line!r}"
        found.setdefault(match.group(2), []).append((match.group(1), match.group(3)))
    return found


def test_the_corpus_has_at_least_thirty_inputs(ingested):
    assert ingested[3] >= 30


def test_every_bad_file_gets_its_one_line_reason(ingested):
    _, result, _, _ = ingested
    found = outcomes(result.stdout)
    for name, reason in REJECTED.items():
        assert [status for status, _ in found[name]] == ["rejected"], name
        assert re.search(reason, found[name][0][1]), (name, found[name])
    assert sorted(status for status, _ in found["dup.txt"]) == ["added", "rejected"]
    assert ("rejected", "another file in this batch has the same name (rename one of them)") in found["dup.txt"]
    assert "Traceback" not in result.stderr and result.returncode == 1
    assert f"{len(REJECTED) + 1} of {ingested[3]} files rejected" in result.stderr


def test_the_rest_of_the_batch_is_ingested_with_its_text(ingested, bi_encoder):
    settings, result, _, _ = ingested
    chunks, records = snapshot(settings, bi_encoder)
    store = Store(settings, bi_encoder)
    try:
        for name, (text, kind) in ADDED.items():
            assert records[name].kind == kind, name
            joined = " ".join(d.page_content for d in store.get_chunks({"source": name}))
            assert text in joined, name
        assert records["many-pages.pdf"].pages == 2000
        assert "alert" not in " ".join(d.page_content for d in store.get_chunks({"source": "scripts.html"}))
        pages = {d.page_content: d.metadata["page"] for d in store.get_chunks({"source": "mixed-pages.pdf"})}
        assert pages == {"first page text": 1, "second page text": 3}
    finally:
        store.close()
    assert ".hidden.md" not in records


def test_refused_files_leave_the_store_exactly_as_before(ingested, bi_encoder):
    settings, _, (chunks_before, records_before), _ = ingested
    chunks, records = snapshot(settings, bi_encoder)
    for name in REJECTED:
        assert {c for c, s in chunks.items() if s == name} == {c for c, s in chunks_before.items() if s == name}
        assert records.get(name) == records_before.get(name)
    assert records["report.pdf"] == records_before["report.pdf"]  # the good old version is untouched


def test_names_that_are_not_plain_file_names_become_labels(tmp_path, bi_encoder):
    settings = make_settings(tmp_path)
    store = Store(settings, bi_encoder)
    try:
        library = Library(store, settings)
        names = ["../../etc/passwd.txt", "C:\\temp\\evil.txt", "a/b/c.txt", "x" * 300 + ".txt", "tab\tname.txt"]
        results = [library.ingest_bytes(n, f"document number {i}".encode()) for i, n in enumerate(names)]
        assert [r.status for r in results] == ["added"] * 5
        stored = [r.name for r in store.list_records()]
        assert all("/" not in n and "\\" not in n and len(n) <= 200 for n in stored)
        assert {"passwd.txt", "evil.txt", "c.txt", "tabname.txt"} <= set(stored)
        assert not any(p.name in stored for p in tmp_path.rglob("*")), "a name was used as a path on disk"
    finally:
        store.close()


def test_an_empty_folder_is_a_clear_error(tmp_path, settings):
    (tmp_path / "empty").mkdir()
    result = run_cli("ingest", str(tmp_path / "empty"), env=cli_env(settings))
    assert result.returncode == 1 and "no files to ingest" in result.stderr and "Traceback" not in result.stderr
