"""PDF parsing, in one place: pypdf over a file's bytes, in this process (`read_pages`) or in a child process that
can be stopped after a timeout (`read_pages_in_child`, which runs `rag/documents/pdf_worker.py`). Both give (page
number, text) per page, numbered from 1, or raise RejectedDocument saying why not."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from ..errors import RejectedDocument

ENCRYPTED = ("encrypted PDF", "remove the password and add it again")


def read_pages(data: bytes) -> list[tuple[int, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only to restrict printing.
            try:
                opened = reader.decrypt("")
            except Exception as exc:  # pypdf raises several types for unsupported ciphers
                raise RejectedDocument(ENCRYPTED[0], fix=ENCRYPTED[1]) from exc
            if not opened:
                raise RejectedDocument(ENCRYPTED[0], fix=ENCRYPTED[1])
        pages = [(i, page.extract_text() or "") for i, page in enumerate(reader.pages, start=1)]
    except RejectedDocument:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, OSError, AssertionError, ZeroDivisionError) as exc:
        raise RejectedDocument(f"corrupt or truncated PDF ({type(exc).__name__})") from exc
    if not pages:
        raise RejectedDocument("corrupt or truncated PDF (no pages)")
    return pages


def read_pages_in_child(data: bytes, timeout: float) -> list[tuple[int, str]]:
    """`read_pages` in `python -m rag.documents.pdf_worker`, stopped after `timeout` seconds: a hostile or broken PDF
    can hang the parser or balloon its memory, and must not take the app with it."""
    package_root = str(Path(__file__).resolve().parents[2])  # holds `rag`: the child finds it from any folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "rag.documents.pdf_worker"], input=data, capture_output=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise RejectedDocument(f"reading the PDF took longer than {timeout:g} s (a damaged or hostile file?)",
                               fix="re-save it with a PDF tool, or raise RAG_PDF_TIMEOUT") from None
    try:
        out = json.loads(done.stdout)
    except ValueError:
        reason = "out of memory" if done.returncode and b"MemoryError" in done.stderr else f"exit {done.returncode}"
        raise RejectedDocument(f"the PDF reader failed on this file ({reason})") from None
    if "error" in out:
        raise RejectedDocument(out["error"], fix=out.get("fix"))
    return [(number, text) for number, text in out["pages"]]
