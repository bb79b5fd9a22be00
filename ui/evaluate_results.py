"""The Evaluate page's results: Recall@3, MRR@10 and nDCG@3 with and without the cross-encoder, overall and per
question, a chart of the two, the questions reranking helped or hurt, and the not-covered threshold."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from rag.evaluation.judgement_scores import (METRIC_NAMES, QuestionResult, Scores, Summary, by_change,
                                             suggest_threshold, summarize)
from rag.text import snippet

from . import sidebar
from .text import escape, plural

SIDES = ("bi-encoder only", "with cross-encoder")
SIDE_COLOURS = ("#9e9e9e", "#1565c0")
STATUS = {"scored": "scored", "not judged": "not judged yet", "stale": "stale: judge again",
          "no candidates": "no candidates", "none relevant": "nothing relevant (not covered)"}
_SCORE = st.column_config.NumberColumn(format="%.3f", width=125)


def overall_table(summary: Summary) -> pd.DataFrame:
    """One row per metric: its mean over the scored questions in each order, and the change reranking made."""
    return pd.DataFrame([{"metric": name, SIDES[0]: bi, SIDES[1]: ce, "change": ce - bi}
                         for name, bi, ce in zip(METRIC_NAMES, summary.bi.as_tuple(), summary.ce.as_tuple())])


OVERALL_COLUMNS = {"metric": st.column_config.TextColumn(width=80), SIDES[0]: _SCORE, SIDES[1]: _SCORE,
                   "change": st.column_config.NumberColumn(format="%+.3f", width=70)}


def metrics_chart(summary: Summary) -> alt.Chart:
    """Each metric's mean as two bars side by side: without and with the cross-encoder."""
    data = pd.DataFrame([{"metric": name, "order": side, "mean": value}
                         for side, scores in zip(SIDES, (summary.bi, summary.ce))
                         for name, value in zip(METRIC_NAMES, scores.as_tuple())])
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("metric:N", sort=list(METRIC_NAMES), title=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("order:N", sort=list(SIDES)),
        y=alt.Y("mean:Q", scale=alt.Scale(domain=[0, 1]), title=f"mean over {plural(summary.questions, 'question')}"),
        color=alt.Color("order:N", sort=list(SIDES), title=None,
                        scale=alt.Scale(domain=list(SIDES), range=list(SIDE_COLOURS)),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["metric:N", "order:N", alt.Tooltip("mean:Q", format=".3f")],
    ).properties(height=260)


def question_table(results: Sequence[QuestionResult]) -> pd.DataFrame:
    """One row per question: its status, each metric as 'bi-encoder → cross-encoder' (blank when not scored), and
    what reranking did."""
    rows = []
    for r in results:
        row = {"question": snippet(r.question, 90), "status": STATUS[r.status]}
        for n, name in enumerate(METRIC_NAMES):
            row[name] = f"{r.bi.as_tuple()[n]:.2f} → {r.ce.as_tuple()[n]:.2f}" if r.bi and r.ce else ""
        row["reranking"] = f"{r.verdict} ({_deltas(r.change, short=True)})" if r.change else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["question", "status", *METRIC_NAMES, "reranking"])


QUESTION_COLUMNS = {
    "question": st.column_config.TextColumn(width=330),
    "status": st.column_config.TextColumn(width="small"),
    **{name: st.column_config.TextColumn(width=90, help=f"{name}: bi-encoder only → with the cross-encoder")
       for name in METRIC_NAMES},
    "reranking": st.column_config.TextColumn(width=160, help="helped, hurt, both ways or no change (over the three "
                                             "metrics), with the change in nDCG@3"),
}


def _deltas(change: Scores, short: bool = False) -> str:
    """'nDCG@3 +0.61 · MRR@10 +0.67 · Recall@3 +0.50' (metrics that did not move left out); short: nDCG@3 only."""
    pairs = list(zip(METRIC_NAMES, change.as_tuple()))[::-1]
    if short:
        return f"{pairs[0][0]} {pairs[0][1]:+.2f}"
    moved = [f"{name} {value:+.2f}" for name, value in pairs if abs(value) > 1e-9]
    return " · ".join(moved) or "no metric moved"


def show_overall(results: Sequence[QuestionResult], hybrid: bool = False) -> None:
    """The overall table and chart, and per question a table; or why nothing can be scored yet. With `hybrid`, the
    first order is the bi-encoder's and BM25's fused, and the caption says so."""
    summary = summarize(results)
    unscored = len(results) - summary.questions
    if summary.questions == 0:
        st.info("No question can be scored yet: tick at least one chunk that answers a question, then save.",
                icon=":material/checklist:")
    else:
        left, right = st.columns(2)
        with left:
            st.dataframe(overall_table(summary), hide_index=True, column_config=OVERALL_COLUMNS)
            st.caption(f"Means over {plural(summary.questions, 'scored question')}"
                       + (f" ({unscored} not scored: see their status below)" if unscored else "") + ". "
                       "Chunks nobody judged count as not relevant."
                       + (" Hybrid search is on: 'bi-encoder only' is the bi-encoder and BM25 fused."
                          if hybrid else ""))
        with right:
            st.altair_chart(metrics_chart(summary), width="stretch")
    st.dataframe(question_table(results), hide_index=True, column_config=QUESTION_COLUMNS)


def show_changes(results: Sequence[QuestionResult]) -> None:
    """The questions reranking helped, hurt, or moved both ways, each with by how much."""
    summary = summarize(results)
    if summary.questions == 0:
        return
    st.markdown(f"Reranking helped **{summary.helped}**, hurt **{summary.hurt}**, moved both ways **{summary.mixed}** "
                f"and left **{summary.unchanged}** of {plural(summary.questions, 'scored question')} unchanged.")
    for verdict, title in (("helped", "Helped"), ("hurt", "Hurt"), ("mixed", "Both ways")):
        chosen = by_change(results, verdict)
        if chosen:
            st.markdown(f"**{title}**  \n" + "  \n".join(f"{escape(snippet(r.question, 120))} — "
                                                          f"{escape(_deltas(r.change))}" for r in chosen))


def threshold_chart(results: Sequence[QuestionResult], current: float, suggested: float | None) -> alt.Chart:
    """Each judged candidate's cross-encoder score as a tick, relevant and not relevant on two rows; the current
    threshold dashed, the suggested one solid."""
    data = pd.DataFrame([{"judged": "relevant" if p.relevant else "not relevant", "score": p.ce_score,
                          "question": snippet(p.question, 80), "source": p.location}
                         for r in results for p in r.points])
    ticks = alt.Chart(data).mark_tick(thickness=2, size=26, opacity=0.8).encode(
        x=alt.X("score:Q", scale=alt.Scale(domain=[0, 1]), title="cross-encoder score"),
        y=alt.Y("judged:N", sort=["relevant", "not relevant"], title=None),
        color=alt.Color("judged:N", scale=alt.Scale(domain=["relevant", "not relevant"], range=["#2e7d32", "#c62828"]),
                        legend=None),
        tooltip=["question:N", "source:N", alt.Tooltip("score:Q", format=".4f")],
    )
    lines = [{"threshold": "now", "value": current}]
    if suggested is not None:
        lines.append({"threshold": "suggested", "value": suggested})
    rules = alt.Chart(pd.DataFrame(lines)).mark_rule(size=2).encode(
        x="value:Q",
        strokeDash=alt.StrokeDash("threshold:N", scale=alt.Scale(domain=["now", "suggested"],
                                                                  range=[[4, 4], [1, 0]]), title="threshold"),
        color=alt.value("#1565c0"), tooltip=["threshold:N", alt.Tooltip("value:Q", format=".2f")],
    )
    return (ticks + rules).properties(height=150)


def show_threshold(results: Sequence[QuestionResult], current: float) -> None:
    """The scores of the judged chunks, the suggested threshold with how it was chosen, and a button to use it."""
    if not any(r.points for r in results):
        st.info("Judge the chunks of a question to see their cross-encoder scores here.", icon=":material/checklist:")
        return
    suggestion = suggest_threshold(results)
    st.altair_chart(threshold_chart(results, current, suggestion.value), width="stretch")
    if suggestion.value is None:
        st.info(escape(suggestion.reason), icon=":material/checklist:")
        return
    st.markdown(f"**Suggested threshold: {suggestion.value:.2f}** (this session uses {current:.2f})")
    note = (f" {plural(suggestion.unreached, 'scored question')} whose relevant chunks are not among the candidates "
            "did not count." if suggestion.unreached else "")
    st.caption(escape(suggestion.reason + note))
    st.button(f"Use {suggestion.value:.2f} for this session", icon=":material/tune:", on_click=sidebar.use_threshold,
              args=(suggestion.value,), disabled=abs(suggestion.value - current) < 1e-9,
              help="Sets the sidebar's not-covered threshold; RAG_MIN_RERANK_SCORE keeps the default for new sessions.")
