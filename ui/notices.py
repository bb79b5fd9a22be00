"""Messages shared by the pages: a problem with its fix, and "no documents yet" with the way to add some."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st

from rag.errors import NoDocuments, RagError

from .text import escape

DOCUMENTS_PAGE = "pages/documents.py"


def with_fix(message: str, fix: str | None = None) -> str:
    """Markdown of an error a user can act on: what went wrong, then how to fix it (both shown as plain text)."""
    return escape(message) + (f"  \n**Fix:** {escape(fix)}" if fix else "")


def problem(message: str, fix: str | None = None) -> None:
    """Show an error with its fix (`with_fix`)."""
    st.error(with_fix(message, fix), icon=":material/error:")


def rerank_unavailable(notice: str, more: str = "") -> None:
    """A ranking left in the bi-encoder's order because the cross-encoder could not load: why, and the fix."""
    st.warning(escape(notice[:1].upper() + notice[1:]) + (f"  \n{more}" if more else ""),
               icon=":material/sync_problem:")


def no_documents(text: str = "There are no documents yet, so there is nothing to answer from.") -> None:
    st.warning(text, icon=":material/folder_open:")
    st.page_link(DOCUMENTS_PAGE, label="Add documents on the Documents page", icon=":material/upload_file:")


T = TypeVar("T")


def or_message(work: Callable[[], T], nothing_yet: str) -> T | None:
    """`work()`, or None after saying why not: `nothing_yet` when there are no documents, else the problem and fix."""
    try:
        return work()
    except NoDocuments:
        no_documents(nothing_yet)
    except RagError as exc:
        problem(exc.message, exc.fix)
    return None


def offer_rebuild(settings, bi_encoder) -> None:
    """The store was built with another embedder: offer to re-embed every chunk with the configured one."""
    from rag.retrieval.store import rebuild

    if st.button(f"Rebuild the index with {settings.embedding_model}", icon=":material/build:", type="primary",
                 help="Re-embeds every chunk with the configured embedder; the documents and their chunks stay."):
        with st.status("Rebuilding the index…", expanded=True) as status:
            bar = st.progress(0.0)
            count = rebuild(settings, bi_encoder(settings),
                            on_batch=lambda done, total: bar.progress(done / total, text=f"{done} of {total} chunks"))
            status.update(label=f"Rebuilt: {count} chunks re-embedded", state="complete")
        st.button("Continue", icon=":material/arrow_forward:")
