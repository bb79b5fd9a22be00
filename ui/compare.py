"""The Compare page's parts: one candidate pool in bi-encoder and cross-encoder order, the moves between them,
time per stage, and an answer from each side's top k."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from rag.compare import bi_encoder_side, cross_encoder_side
from rag.pipeline import Pipeline
from rag.results import Ranking, Timings
from rag.text import snippet

from . import answers, notices, resources
from .answers import Reply
from .evidence import compact_evidence, scorer_label
from .sources import move_arrow
from .text import escape, model_label

_RANKING = "compare_ranking"
_ANSWERS = "compare_answers"
SIDES = ("bi-encoder", "cross-encoder")


@dataclass(kw_only=True)
class SideAnswer(Reply):
    """One side's answer."""

    side: str
    timings: Timings = field(default_factory=Timings)


def ranking_for(pipeline: Pipeline, question: str) -> Ranking:
    """The question's pool, reranked (`resources.reranked`; in the bi-encoder's order, with the reason, when the
    cross-encoder cannot load); the answers generated from another ranking go."""
    key = resources.ranking_key(pipeline)
    if st.session_state.get(_RANKING) != (question, key):
        st.session_state[_RANKING] = (question, key)
        st.session_state.pop(_ANSWERS, None)
    with st.spinner("Ranking the candidates with both encoders…"):
        return resources.reranked(pipeline, question, key, fallback=True)


def ranking_or_message(pipeline: Pipeline, question: str) -> Ranking | None:
    """The ranking, or None after saying why there is none (no documents yet, a store or model problem)."""
    return notices.or_message(lambda: ranking_for(pipeline, question),
                              "There are no documents yet, so there is nothing to rank.")


COLUMNS = {
    "rank": st.column_config.NumberColumn(width=45),
    "move": st.column_config.TextColumn(width=55, help="Places gained (▲) or lost (▼) by reranking"),
    "top k": st.column_config.TextColumn(width=45, help="Sent to the LLM by this side"),
    "score": st.column_config.NumberColumn(format="%.4f", width=65),
    "source": st.column_config.TextColumn(width="medium"),
    "snippet": st.column_config.TextColumn(width="large"),
}


def bi_rows(ranking: Ranking) -> list[dict]:
    """The pool in bi-encoder order; `top k` marks the chunks the bi-encoder alone would send."""
    keep = len(ranking.kept)
    return [{"rank": s.bi_rank, "top k": "✔" if s.bi_rank <= keep else "", "score": s.bi_score,
             "source": s.location, "snippet": snippet(s.text, 200)} for s in ranking.candidates]


def ce_rows(ranking: Ranking) -> list[dict]:
    """The pool in cross-encoder order, with each chunk's move from its bi-encoder rank."""
    return [{"rank": s.ce_rank, "move": move_arrow(s.rank_move), "top k": "✔" if s.number else "",
             "score": s.ce_score, "source": s.location, "snippet": snippet(s.text, 200)}
            for s in ranking.reranked_order]


def slope_chart(ranking: Ranking) -> alt.Chart:
    """Each candidate as a line from its bi-encoder rank to its cross-encoder rank (rank 1 at the top)."""
    keep = len(ranking.kept)
    points = []
    for s in ranking.candidates:
        move = s.rank_move or 0
        change = "moved up" if move > 0 else "moved down" if move < 0 else "stayed"
        for side, rank in zip(SIDES, (s.bi_rank, s.ce_rank)):
            points.append({"chunk": s.chunk_id, "order": side, "rank": rank, "change": change,
                           "top k after reranking": bool(s.number), "source": s.location,
                           "snippet": snippet(s.text, 80), "bi rank": s.bi_rank, "ce rank": s.ce_rank,
                           "move": move_arrow(s.rank_move)})
    data = pd.DataFrame(points)
    n = max(len(ranking.candidates), 1)
    base = alt.Chart(data).encode(
        x=alt.X("order:N", sort=list(SIDES), title=None, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("rank:Q", scale=alt.Scale(reverse=True, domain=[0.5, n + 0.5], nice=False), title="rank",
                axis=alt.Axis(tickMinStep=1)),
        detail="chunk:N",
        color=alt.Color("change:N", title="after reranking",
                        scale=alt.Scale(domain=["moved up", "moved down", "stayed"],
                                        range=["#2e7d32", "#c62828", "#9e9e9e"])),
        tooltip=["source:N", "snippet:N", "bi rank:Q", "ce rank:Q", "move:N"],
    )
    lines = base.mark_line().encode(
        strokeWidth=alt.condition(alt.datum["top k after reranking"], alt.value(3.5), alt.value(1.2)))
    dots = base.mark_circle(size=60)
    rule = alt.Chart(pd.DataFrame({"rank": [keep + 0.5]})).mark_rule(strokeDash=[4, 4], color="#888").encode(y="rank:Q")
    return (lines + dots + rule).properties(height=max(220, 18 * n))


def show_timings(ranking: Ranking) -> None:
    t = ranking.timings
    cols = st.columns(3)
    cols[0].metric("Candidates", len(ranking.candidates))
    cols[1].metric("Bi-encoder retrieval", _ms(t.retrieve_ms))
    cols[2].metric("Cross-encoder rerank", _ms(t.rerank_ms))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def side_title(ranking: Ranking, side: str) -> str:
    if side == "bi-encoder" and ranking.hybrid:
        return "Bi-encoder + BM25 order (fused)"
    return f"{side.capitalize()} order"


def side_model(ranking: Ranking, side: str) -> str:
    model = ranking.embedder if side == "bi-encoder" else ranking.reranker
    return escape(f"{'embedder' if side == 'bi-encoder' else 'cross-encoder'}: {model_label(model)}")


def no_cross_encoder_side(ranking: Ranking) -> None:
    """In place of the cross-encoder's column when it could not load: why, and the fix."""
    notices.rerank_unavailable(ranking.rerank_notice or "reranking is off",
                               "The bi-encoder's order is on the left; this side fills in once the cross-encoder "
                               "loads (after a restart of the app).")


def answer_both(pipeline: Pipeline, ranking: Ranking, columns: Sequence[DeltaGenerator]) -> None:
    """Stream the bi-encoder side's answer into the first column, then the cross-encoder side's into the second
    (only the first when the pool could not be reranked)."""
    results = []
    views = (bi_encoder_side(ranking), cross_encoder_side(ranking))[: 2 if ranking.reranked else 1]
    for side, view, column in zip(SIDES, views, columns):
        result = SideAnswer(side=side)
        with column:
            live = st.empty()
            with live.container():
                answer = pipeline.answer_from(view)
                answers.stream(answer, result)
            result.timings = answer.timings
            with live.container():
                show_answer(result)
        results.append(result)
    st.session_state[_ANSWERS] = results


def stored_answers() -> list[SideAnswer]:
    """The answers generated for the current ranking, if any."""
    return st.session_state.get(_ANSWERS, [])


def show_answer(result: SideAnswer) -> None:
    """One side's answer, its citations linked to the lines below it: each sent chunk with its best sentence."""
    prefix = f"compare-{result.side}"
    st.markdown(f"**Answer from the {escape(result.side)} top {len(result.sources)}**")
    answers.show(result, anchors=prefix)
    if result.sources:
        st.html(compact_evidence(result.sources, result.evidence, prefix,
                                 scorer_label(result.side == "cross-encoder")))
    st.caption(escape(f"First token after {_ms(result.timings.first_token_ms)}, "
                      f"answer in {_ms(result.timings.answer_ms)}."))
