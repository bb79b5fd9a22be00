"""Source cards: the chunks sent with an answer, numbered as cited, with both rankers' scores, the sentence that
best answers the question (highlighted) and the text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from rag.answers.evidence import best_evidence
from rag.history.conversation_export import STATE_NOTES
from rag.results import Evidence, Source

from .evidence import card_evidence, scorer_label
from .text import anchor, escape, model_label


def move_arrow(move: int | None) -> str:
    """Places gained by reranking as an arrow: ▲ +2, ▼ −3, = 0, or '' when not reranked."""
    if move is None:
        return ""
    if move > 0:
        return f"▲ +{move}"
    if move < 0:
        return f"▼ −{-move}"
    return "= 0"


def score_line(source: Source, reranker: str | None, hybrid: bool = False) -> str:
    """'bi-encoder 0.6123 (#2) · cross-encoder reranker-x 0.9871 (#1, ▲ +1)' as escaped markdown.

    With hybrid search the first score is the fused (reciprocal-rank) one of the bi-encoder and BM25.
    """
    first = "fused bi-encoder + BM25" if hybrid else "bi-encoder"
    line = f"{first} {source.bi_score:.4f} (#{source.bi_rank})"
    if source.ce_score is None:
        return escape(line + " · not reranked")
    line += (f" · cross-encoder {model_label(reranker)} {source.ce_score:.4f} "
             f"(#{source.ce_rank}, {move_arrow(source.rank_move)})")
    return escape(line)


def show_sources(sources: Sequence[Source], prefix: str, reranker: str | None, heading: str = "Sources",
                 hybrid: bool = False, evidence: Mapping[int, Sequence[Evidence]] | None = None,
                 states: Mapping[str, str] | None = None) -> None:
    """One bordered card per source, each starting with the anchor its citation [n] links to.

    Where the chunk's sentences were scored against the question (`evidence`), its best sentence shows on the
    card, highlighted in its surroundings, without opening the chunk's text. A source whose document was since
    replaced or deleted (`states`, by chunk id) says so: its card still shows the text that was sent.
    """
    states = states or {}
    evidence = evidence or {}
    best = best_evidence(evidence)
    st.markdown(f"**{escape(heading)}**")
    for source in sources:
        with st.container(border=True, gap="xsmall"):
            # The anchor is ours (an id made of the turn and the number); nothing a document wrote goes into it.
            st.html(f'<div id="{anchor(prefix, source.number or 0)}"></div>')
            st.markdown(f"**{escape(f'[{source.number}] {source.location}')}**")
            st.caption(score_line(source, reranker, hybrid))
            if states.get(source.chunk_id) in STATE_NOTES:
                note = STATE_NOTES[states[source.chunk_id]]
                st.caption(f":orange[:material/history:] {note[0].upper()}{note[1:]}.")
            found = card_evidence(source, evidence.get(source.number or 0, []), scorer_label(reranker is not None),
                                  best)
            if found:
                st.html(found)
            with st.expander("Text of the chunk"):
                st.text(source.text)
