"""An answer as the pages keep and show it: streamed in escaped, an LLM error ending the stream as a message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import streamlit as st

from rag.errors import RagError
from rag.results import Answer, Source

from . import notices
from .text import escape, linked_answer


@dataclass(kw_only=True)
class Reply:
    """What became of one answer, kept in the session so that the page can redraw it."""

    sources: list[Source] = field(default_factory=list)
    text: str = ""
    outcome: str | None = None
    error: str | None = None
    fix: str | None = None
    cut_off: bool = False


def stream(answer: Answer, reply: Reply) -> None:
    """Stream the answer with `st.write_stream`; a RagError while it streams ends it and is noted on `reply`.

    `reply` is kept up to date as the pieces arrive, so that an answer the user stops (or a new question
    interrupts) keeps what it had so far, marked as cut off.
    """

    def pieces() -> Iterator[str]:
        try:
            for piece in answer.tokens:
                reply.text, reply.cut_off = answer.text, True  # until the stream ends, it counts as cut off
                yield escape(piece, keep_lines=False)
        except RagError as exc:
            reply.error, reply.fix = exc.message, exc.fix
        reply.text, reply.cut_off = answer.text, answer.cut_off

    reply.outcome, reply.sources = answer.outcome, answer.sources
    st.write_stream(pieces())


def show(reply: Reply, anchors: str | None = None) -> None:
    """The answer (citations linked to the sources' anchors when `anchors` is given), a cut-off mark, the error."""
    if reply.outcome == "not_covered":
        st.info(escape(reply.text), icon=":material/search_off:")
    elif reply.text and anchors:
        st.markdown(linked_answer(reply.text, anchors, {s.number for s in reply.sources if s.number}))
    elif reply.text:
        st.markdown(escape(reply.text))
    if reply.cut_off:
        st.caption("✂️ The answer was cut off here.")
    if reply.error:
        notices.problem(reply.error, reply.fix)
