"""Parses one PDF in a separate process: `python -m rag.documents.pdf_worker < file.pdf` prints its pages as JSON
(`rag.documents.pdf.read_pages`, under a memory cap).

PDFs are the one input whose parser can hang or balloon on a hostile or broken file; in a child process it can be
stopped after a timeout and capped in memory without touching the app.
"""

from __future__ import annotations

import json
import resource
import sys

MEMORY_CAP = 2 << 30  # bytes of address space for the parser


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    from ..errors import RejectedDocument
    from .pdf import read_pages

    data = sys.stdin.buffer.read()
    try:
        out = {"pages": [[number, text] for number, text in read_pages(data)]}
    except RejectedDocument as exc:
        out = {"error": exc.message, "fix": exc.fix}
    except MemoryError:
        out = {"error": "the PDF needs more than 2 GB of memory to read"}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
