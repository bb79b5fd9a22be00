"""Files become text with page marks; what is not a document is refused with a reason."""

import codecs

import pytest

from rag.documents.loaders import detect_kind, load_document
from rag.errors import RejectedDocument
from tests.samples import make_docx, make_image_only_pdf, make_pdf, make_zip


def test_a_pdf_keeps_its_page_numbers():
    loaded = load_document(make_pdf("Apples grow in Norway.", "Bananas grow in Ecuador."), "fruit.pdf")
    assert loaded.kind == "pdf"
    assert [p.number for p in loaded.pages] == [1, 2]
    assert "Bananas" in loaded.pages[1].text and "Bananas" not in loaded.pages[0].text


def test_the_loader_is_chosen_by_content_not_by_extension():
    pdf = make_pdf("A PDF in disguise.")
    assert detect_kind(pdf, "notes.txt") == "pdf"
    assert "disguise" in load_document(pdf, "notes.txt").pages[0].text
    assert detect_kind(b"<!DOCTYPE html><html><body>x</body></html>", "page.txt") == "html"
    assert detect_kind(b"# Title\n\ntext", "readme.md") == "markdown"
    assert detect_kind(b"plain words", "notes") == "text"


def test_docx_paragraphs_are_read():
    loaded = load_document(make_docx("First paragraph.", "The boiler is serviced every May."), "manual.docx")
    assert loaded.kind == "docx" and "serviced every May" in loaded.pages[0].text


def test_html_loses_scripts_styles_and_frames_but_keeps_text():
    html = (b"<html><head><style>p{color:red}</style><script>alert('x')</script></head><body>"
            b"<h1>Glossary</h1><p>A chunk is a piece of a document.</p><iframe src='http://evil'></iframe></body></html>")
    text = load_document(html, "glossary.html").pages[0].text
    assert "A chunk is a piece of a document." in text
    assert "alert" not in text and "color" not in text and "evil" not in text


@pytest.mark.parametrize("data", [
    "Crème brûlée costs 7 €".encode("cp1252"),
    "Crème brûlée costs 7 kr".encode("latin-1"),
    codecs.BOM_UTF16_LE + "Crème brûlée costs 7 €".encode("utf-16-le"),
    codecs.BOM_UTF8 + "Crème brûlée costs 7 €".encode("utf-8"),
])
def test_text_in_other_encodings_is_decoded(data):
    assert "Crème brûlée costs 7" in load_document(data, "menu.txt").pages[0].text


@pytest.mark.parametrize("data, name, reason", [
    (b"", "empty.txt", "empty file"),
    (b"   \n\n\t ", "blank.md", "no text"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "photo.pdf", "PNG image"),
    (bytes(range(256)) * 20, "binary.md", "binary content"),
    (make_zip({"a.txt": b"hello"}), "report.docx", "ZIP archive, not a DOCX"),
    (b"%PDF-1.7\n1 0 obj garbage", "broken.pdf", "corrupt or truncated PDF"),
    (make_image_only_pdf(), "scan.pdf", "no text layer"),
    (make_pdf("secret", password="pw"), "locked.pdf", "encrypted PDF"),
])
def test_what_is_not_a_readable_document_is_refused_with_the_reason(data, name, reason):
    with pytest.raises(RejectedDocument, match=reason):
        load_document(data, name)


def test_a_truncated_pdf_is_refused():
    pdf = make_pdf("Some text on a page that will be cut.", "Another page.")
    with pytest.raises(RejectedDocument, match="corrupt or truncated PDF|no text layer"):
        load_document(pdf[: len(pdf) // 3], "cut.pdf")
