"""Bytes -> text with page marks. The loader is chosen by what the bytes are, not by the file name;
what is not a document is refused with a reason a user can act on."""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePath
from typing import Literal

from ..errors import RejectedDocument
from .pdf import read_pages, read_pages_in_child

Kind = Literal["pdf", "docx", "html", "markdown", "text"]

# Signatures of common non-documents, to say what a refused file is instead of "binary".
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "a Windows executable"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office (OLE) file: save it as .docx or PDF"),
    (b"ID3", "an MP3 file"),
    (b"OggS", "an Ogg file"),
    (b"RIFF", "a RIFF (audio/video) file"),
    (b"SQLite format 3", "a SQLite database"),
]
_BOMS = [(codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")]
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
_HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
# Control characters other than tab, newline, carriage return and form feed mark binary content.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Page:
    """Text of one page (PDF) or of the whole document (number None)."""

    number: int | None
    text: str


@dataclass(frozen=True)
class LoadedDocument:
    kind: Kind
    pages: list[Page]

    @property
    def page_count(self) -> int | None:
        return len(self.pages) if self.kind == "pdf" else None


def load_document(
    data: bytes, name: str, max_pages: int = 5000, pdf_timeout: float | None = 120.0
) -> LoadedDocument:
    """Turn a file's bytes into text with page marks, or raise RejectedDocument saying why not.

    PDFs are parsed in a child process stopped after `pdf_timeout` seconds (None: in this process, no limit).
    """
    if not data:
        raise RejectedDocument("empty file (0 bytes)")
    kind = detect_kind(data, name)
    if kind == "pdf":
        read = read_pages_in_child(data, pdf_timeout) if pdf_timeout else read_pages(data)
        pages = [Page(number, _normalise(text)) for number, text in read]
        if len(pages) > max_pages:
            raise RejectedDocument(f"too many pages: {len(pages)}, the limit is {max_pages}",
                                   fix="split the PDF, or raise RAG_MAX_PAGES")
    elif kind == "docx":
        pages = [Page(None, _load_docx(data))]
    elif kind == "html":
        pages = [Page(None, _html_to_text(decode_text(data)))]
    else:
        pages = [Page(None, _normalise(decode_text(data)))]
    if not any(p.text.strip() for p in pages):
        if kind == "pdf":
            raise RejectedDocument(
                "the PDF has no text layer (a scan?)", fix="run OCR on it first, e.g. `ocrmypdf in.pdf out.pdf`"
            )
        raise RejectedDocument("no text in the file")
    return LoadedDocument(kind, pages)


def detect_kind(data: bytes, name: str) -> Kind:
    """Which loader fits the bytes. The name's suffix only chooses between text flavours."""
    head = data[:2048]
    if head.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise RejectedDocument(f"unsupported file type: {what}")
    text = decode_text(data[:65536], partial=True)
    suffix = PurePath(name).suffix.lower()
    if suffix in _HTML_SUFFIXES or _HTML_START.match(text.encode("utf-8", "replace")[:4096]):
        return "html"
    return "markdown" if suffix in _MARKDOWN_SUFFIXES else "text"


def decode_text(data: bytes, partial: bool = False) -> str:
    """Decode text: a BOM wins, then UTF-8, then Windows-1252/Latin-1. Binary content is refused."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding, errors="strict" if not partial else "ignore")
            except UnicodeDecodeError as exc:
                raise RejectedDocument(f"not valid {encoding} text despite its byte-order mark") from exc
    if b"\x00" in data[:8192]:
        raise RejectedDocument("unsupported file type: binary content, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character only matters at the very end of a partial read.
        if partial and exc.start >= len(data) - 3:
            text = data[: exc.start].decode("utf-8")
        else:
            text = data.decode("cp1252", errors="replace") if _looks_cp1252(data) else data.decode("latin-1")
    sample = text[:8192]
    if sample and len(_CONTROL.findall(sample)) > max(8, len(sample) // 100):
        raise RejectedDocument("unsupported file type: binary content, not text")
    return text


def _looks_cp1252(data: bytes) -> bool:
    # Bytes 0x80-0x9f are printable in Windows-1252 (quotes, dashes) but control codes in Latin-1.
    return any(0x80 <= b <= 0x9F for b in data[:65536])


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _zip_kind(data: bytes) -> Kind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise RejectedDocument("corrupt ZIP container (a damaged DOCX?)") from exc
    if "word/document.xml" in names:
        return "docx"
    if any(n.startswith(("xl/", "ppt/")) for n in names):
        raise RejectedDocument("unsupported file type: a spreadsheet or presentation", fix="save it as PDF")
    raise RejectedDocument("unsupported file type: a ZIP archive, not a DOCX", fix="unpack it and add the files")


def _load_docx(data: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise RejectedDocument("corrupt DOCX") from exc
    except Exception as exc:  # lxml raises its own XMLSyntaxError for damaged parts
        raise RejectedDocument(f"corrupt DOCX ({type(exc).__name__})") from exc
    blocks = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(blocks)


def _html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    # Script, style and embedded frames are not content a reader sees.
    for tag in soup(["script", "style", "noscript", "iframe", "template", "object", "embed", "svg"]):
        tag.decompose()
    text = soup.get_text("\n")
    return re.sub(r"\n\s*\n+", "\n\n", _normalise(text)).strip()
