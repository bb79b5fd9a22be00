"""An answer as the pages keep and show it: streamed in escaped, an LLM error ending the stream as a message;
then redrawn with the citations checked against the sources, or as the model's decline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import streamlit as st

from rag.answers.declines import DECLINED, UNSUPPORTED_ANSWER
from rag.errors import RagError
from rag.results import Answer, AnswerSentence, Evidence, Source

from . import notices
from .text import LEGEND, attributed_answer, escape, linked_answer


@dataclass(kw_only=True)
class Reply:
    """What became of one answer, kept in the session so that the page can redraw it.

    `evidence` (the scored sentences of each sent chunk, best first) is known before the answer streams;
    `sentences` (the answer's sentences with the chunks that support them) once it has streamed to its end.
    """

    sources: list[Source] = field(default_factory=list)
    text: str = ""
    outcome: str | None = None
    error: str | None = None
    fix: str | None = None
    cut_off: bool = False
    evidence: dict[int, list[Evidence]] = field(default_factory=dict)
    sentences: list[AnswerSentence] = field(default_factory=list)
    rerank_notice: str | None = None
    """Why the sources are in the bi-encoder's order although reranking was asked for."""


def stream(answer: Answer, reply: Reply) -> None:
    """Stream the answer with `st.write_stream`; a RagError while it streams ends it and is noted on `reply`.

    `reply` is kept up to date as the pieces arrive, so that an answer the user stops (or a new question
    interrupts) keeps what it had so far, marked as cut off. The outcome is read again at the end: the pipeline
    recognises a decline, and attributes the sentences, only once the whole answer is in.
    """

    def pieces() -> Iterator[str]:
        try:
            for piece in answer.tokens:
                reply.text, reply.cut_off = answer.text, True  # until the stream ends, it counts as cut off
                yield escape(piece, keep_lines=False)
        except RagError as exc:
            reply.error, reply.fix = exc.message, exc.fix
        reply.text, reply.cut_off = answer.text, answer.cut_off
        reply.outcome, reply.sentences = answer.outcome, list(answer.sentences)

    reply.outcome, reply.sources, reply.evidence = answer.outcome, answer.sources, dict(answer.evidence)
    reply.rerank_notice = answer.ranking.rerank_notice
    show_rerank_notice(reply)
    st.write_stream(pieces())


def show(reply: Reply, anchors: str | None = None) -> None:
    """The answer, a cut-off mark, the error.

    With `anchors`, citations link to the sources' anchors; once the answer's sentences are attributed, each
    sentence carries the chunk found to support it where the model did not cite it, or a mark where none does,
    with a legend under the answer. A decline, an answer no source supports and "not covered" are messages of
    their own.
    """
    numbers = {s.number for s in reply.sources if s.number}
    show_rerank_notice(reply)
    if reply.outcome == "not_covered":
        st.info(escape(reply.text), icon=":material/search_off:")
    elif reply.outcome == "declined":
        st.info(f"**{DECLINED}** It wrote:  \n{escape(reply.text)}", icon=":material/unknown_document:")
    elif reply.outcome == "unsupported":
        st.warning(f"**{UNSUPPORTED_ANSWER}** It wrote:  \n{escape(reply.text)}", icon=":material/report:")
    elif reply.text and anchors and reply.sentences:
        st.markdown(attributed_answer(reply.text, reply.sentences, anchors, numbers))
        st.caption(LEGEND)
    elif reply.text and anchors:
        st.markdown(linked_answer(reply.text, anchors, numbers))
    elif reply.text:
        st.markdown(escape(reply.text))
    if reply.cut_off:
        st.caption("✂️ The answer was cut off here.")
    if reply.error:
        notices.problem(reply.error, reply.fix)


def show_rerank_notice(reply: Reply) -> None:
    if reply.rerank_notice:
        notices.rerank_unavailable(reply.rerank_notice)
