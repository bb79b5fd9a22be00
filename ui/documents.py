"""The Documents page's parts: ingest with progress, the outcome of each file, the table, and delete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

from rag.documents.library import IngestOutcome, Library, clean_name, expand_paths
from rag.errors import RagError
from rag.retrieval.store import DocumentRecord

from .text import escape, plural

FILE_TYPES = ["pdf", "docx", "md", "markdown", "txt", "html", "htm"]
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "data"
_OUTCOMES = "document_outcomes"
_NOTICE = "document_notice"
_TO_DELETE = "documents_to_delete"


def ingest(library: Library, files: Sequence[tuple[str, bytes]]) -> list[IngestOutcome]:
    """Ingest (name, bytes) pairs through the library's batched path, as the CLI does, showing progress per file
    read, per batch of chunks embedded, and each file's outcome once its batch is written."""
    total = len(files)
    settled: list[IngestOutcome] = []
    with st.status(f"Adding {plural(total, 'file')}…", expanded=True) as status:
        overall = st.progress(0.0)
        chunks = st.progress(0.0)

        def on_start(index: int, name: str) -> None:
            overall.progress(index / total, text=f"File {index + 1} of {total}: reading and splitting {escape(name)}")

        def on_chunks(done: int, of: int) -> None:
            chunks.progress(done / of, text=f"Embedding a batch of files: {done} of {of} chunks")

        def on_file(outcome: IngestOutcome) -> None:
            settled.append(outcome)
            st.caption(f"{escape(outcome.name)}: {outcome.status}")

        try:
            outcomes = library.ingest_many(files, on_file=on_file, on_start=on_start, on_chunks=on_chunks)
        except RagError as exc:  # the store failed, not the files: each file not yet settled gets its reason
            left = Counter(clean_name(name) for name, _ in files) - Counter(o.name for o in settled)
            for name in left.elements():
                on_file(IngestOutcome(name, "rejected", reason=str(exc)))
            outcomes = settled
        overall.progress(1.0, text=f"{total} of {total} files done")
        rejected = sum(o.status == "rejected" for o in outcomes)
        status.update(label=summary(outcomes), state="error" if rejected == total else "complete", expanded=False)
    st.session_state[_OUTCOMES] = outcomes
    return outcomes


def sample_files() -> list[tuple[str, bytes]]:
    """The sample documents under data/ as (name, bytes)."""
    return [(p.name, p.read_bytes()) for p in expand_paths([SAMPLE_DATA])] if SAMPLE_DATA.is_dir() else []


def summary(outcomes: Sequence[IngestOutcome]) -> str:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing added"


def show_outcome(outcome: IngestOutcome) -> None:
    name = escape(outcome.name)
    if outcome.status == "added":
        st.success(f"**added** {name}: {plural(outcome.chunks, 'chunk')}", icon=":material/add_circle:")
    elif outcome.status == "replaced":
        st.success(f"**replaced** {name}: the new version has {plural(outcome.chunks, 'chunk')}",
                   icon=":material/sync:")
    elif outcome.status == "unchanged":
        st.info(f"**unchanged** {name}: already in the library ({plural(outcome.chunks, 'chunk')})",
                icon=":material/check:")
    else:
        st.error(f"**rejected** {name}: {escape(outcome.reason or 'unknown reason')}", icon=":material/block:")


def last_outcomes() -> list[IngestOutcome]:
    """The outcomes of the last upload in this session (shown until the next one)."""
    return st.session_state.get(_OUTCOMES, [])


def table(records: Sequence[DocumentRecord]) -> pd.DataFrame:
    """The documents table: name, type, pages (blank for files without pages), chunks, size, added."""
    frame = pd.DataFrame(
        [{"name": r.name, "type": r.kind, "pages": r.pages, "chunks": r.chunks,
          "size (KB)": round(r.size_bytes / 1024, 1), "added": _when(r.added_at)} for r in records],
        columns=["name", "type", "pages", "chunks", "size (KB)", "added"],
    )
    return frame.astype({"pages": "Int64"})


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def delete_picker(library: Library, names: Sequence[str]) -> None:
    """Pick documents and delete them (the deletion runs in the button's callback, before the page redraws)."""
    st.multiselect("Documents to delete", names, key=_TO_DELETE, placeholder="Choose documents")
    st.button("Delete", icon=":material/delete:", on_click=_delete_selected, args=(library,),
              disabled=not st.session_state.get(_TO_DELETE))


def _delete_selected(library: Library) -> None:
    messages = []
    for name in st.session_state.get(_TO_DELETE, []):
        try:
            messages.append(f"Deleted {escape(name)} ({plural(library.delete(name), 'chunk')}).")
        except RagError as exc:
            messages.append(f"Could not delete {escape(name)}: {escape(str(exc))}")
    st.session_state[_TO_DELETE] = []
    st.session_state[_NOTICE] = "  \n".join(messages)
    st.session_state.pop(_OUTCOMES, None)


def take_notice() -> str | None:
    """The message left by the last delete, once."""
    return st.session_state.pop(_NOTICE, None)
