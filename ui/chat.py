"""One chat turn: ask the pipeline, stream the answer, and show it with its sources; and the turns of a session.

Failures a user can act on (Ollama unreachable, model not pulled, no documents, not covered) become messages
that say what to do; the sources stay visible whenever retrieval ran, each with its evidence sentence. An answer in
which the model says that the documents do not answer is shown as such, apart from both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import streamlit as st

from rag.answers.declines import sources_heading
from rag.errors import LLMError, ModelNotPulled, NoDocuments, OllamaUnreachable, RagError
from rag.pipeline import Pipeline
from rag.results import Answer

from . import answers, notices
from .answers import Reply
from .sources import show_sources
from .text import escape

log = logging.getLogger(__name__)
_LLM_ERRORS = (OllamaUnreachable, ModelNotPulled, LLMError)
# A declined answer's sources were read by the model, which found no answer in them: say that they were sent.
@dataclass(kw_only=True)
class Turn(Reply):
    """A question and what became of it."""

    question: str
    standalone_question: str | None = None
    """The question retrieval used, when it differs from the one asked (a rewritten follow-up)."""
    reranker: str | None = None
    hybrid: bool = False
    no_documents: bool = False
    not_saved: str | None = None
    """Why the turn could not be saved to the conversations file, if it could not."""


SaveTurn = Callable[[Turn, "Answer | None"], None]
"""Saves a turn that has ended (answered, failed or stopped), with the Answer it came from if retrieval ran."""


def turns() -> list[Turn]:
    """The session's conversation, oldest first."""
    return st.session_state.setdefault("chat_turns", [])


def conversation(past: list[Turn]) -> list[tuple[str, str]]:
    """(role, text) pairs of the answered turns, for rewriting follow-ups. Of an answer no source supports, only
    the question: it still says what the user is asking about, the answer would carry its error into the rewrite."""
    pairs: list[tuple[str, str]] = []
    for turn in past:
        if turn.text and turn.outcome == "answered":
            pairs += [("user", turn.question), ("assistant", turn.text)]
        elif turn.text and turn.outcome == "unsupported":
            pairs.append(("user", turn.question))
    return pairs


def rerank_toggle(problem: RagError | None) -> bool:
    """The reranking toggle. When the cross-encoder cannot load it is shown off and disabled, with the reason; the
    questions then still ask for reranking, so that the pipeline answers without it and says so on each answer."""
    if problem is None:
        return st.toggle("Rerank with cross-encoder", value=True, key="rerank",
                         help="Rescore the bi-encoder's candidates with the cross-encoder before keeping the best "
                              "ones.")
    st.toggle("Rerank with cross-encoder: unavailable", value=False, disabled=True, key="rerank_unavailable",
              help=notices.with_fix(problem.message, problem.fix))
    return True


def ask(pipeline: Pipeline, question: str, history: list[tuple[str, str]], rerank: bool) -> Answer:
    """`pipeline.ask` (without reranking, and saying so, if the cross-encoder cannot load); if the LLM fails while
    rewriting a follow-up, retrieve with the question as asked, so that the sources still show (the same LLM error
    is then raised while the answer streams)."""
    try:
        return pipeline.ask(question, history, rerank=rerank, fallback=True)
    except _LLM_ERRORS:
        if not history:
            raise
        return pipeline.ask(question, (), rerank=rerank, fallback=True)


def answer_turn(pipeline: Pipeline, question: str, rerank: bool, save: SaveTurn | None = None) -> Turn:
    """Answer in the current container: stream the answer, then redraw the whole turn with links and sources.

    The turn joins the conversation before anything runs and is filled in as the answer arrives, so that a run
    stopped by the user (or by a new question) keeps the question and the answer so far; `save` gets it once it
    has ended, however it ended.
    """
    history = conversation(turns())
    turn = Turn(question=question)
    index = len(turns())
    turns().append(turn)
    live = st.empty()
    answer: Answer | None = None
    try:
        try:
            with live.container():
                with st.spinner("Searching your documents…"):
                    answer = ask(pipeline, question, history, rerank)
                turn.reranker, turn.hybrid = answer.ranking.reranker, answer.ranking.hybrid
                if answer.rewritten:
                    turn.standalone_question = answer.standalone_question
                    show_standalone(turn.standalone_question)
                answers.stream(answer, turn)
        except NoDocuments as exc:
            turn.no_documents, turn.error, turn.fix = True, exc.message, exc.fix
        except RagError as exc:
            turn.error, turn.fix = exc.message, exc.fix
        except Exception as exc:  # a bug, not something the user can fix: one line here, the traceback in the log
            log.exception("answering %r failed", question)
            turn.error = f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:  # also when the run is stopped mid-answer: the turn is saved with what it had
        if save is not None:
            save(turn, answer)
    with live.container():
        show_turn(turn, index)
    return turn


def show_standalone(question: str) -> None:
    st.caption(f"Searched for: {escape(question)}")


def show_turn(turn: Turn, index: int, states: Mapping[str, str] | None = None) -> None:
    """The assistant's side of a turn: answer (or message), its problems, then its sources with their evidence.

    `states` marks sources whose document was since replaced or deleted (by chunk id, as
    `rag.history.conversations.source_states` gives them)."""
    prefix = f"turn{index}"
    if turn.no_documents:
        notices.no_documents()
        return
    if turn.standalone_question:
        show_standalone(turn.standalone_question)
    if not (turn.text or turn.error or turn.sources):
        st.caption("Stopped before the answer began.")
    answers.show(turn, anchors=prefix)
    if turn.sources:
        show_sources(turn.sources, prefix, turn.reranker, sources_heading(turn.outcome), turn.hybrid,
                     turn.evidence, states)
    if turn.not_saved:
        st.caption(f":orange[:material/warning:] Not saved: {escape(turn.not_saved)}")
