"""The Evaluate page's parts: the judgements file (or what to do when it cannot be read), adding, importing and
exporting questions, judging a question's pool, and each question ranked both ways.

Every change goes through `rag.evaluation.judgements.update` in a widget callback, which runs before the page is drawn,
so the page always shows what the file now holds; a callback leaves one message for the next run (`show_notice`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import streamlit as st

from rag.errors import CorruptJudgements, JudgementsError, RagError
from rag.evaluation import judgements as saved
from rag.evaluation.judgement_scores import POOL_DEPTH, QuestionResult, existing_chunk_ids, judging_pool, score_question
from rag.evaluation.judgements import JudgedQuestion, Judgement, Judgements
from rag.pipeline import Pipeline
from rag.results import Ranking, Source
from rag.text import snippet

from . import notices, resources
from .text import escape, plural

_NOTICE = "evaluate_notice"
_QUESTION = "evaluate_question"
_NEW_QUESTION = "evaluate_new_question"
_UPLOAD = "evaluate_upload"
_BOX = "judge:"  # prefix of the judging checkboxes' keys: judge:<question key>:<chunk id>
MAX_IMPORT_MB = 5
T = TypeVar("T")


# -- messages left by callbacks


def _leave(kind: str, text: str) -> None:
    st.session_state[_NOTICE] = (kind, text)


def show_notice() -> None:
    """The message the last action left (once). Its text is already escaped."""
    kind, text = st.session_state.pop(_NOTICE, (None, None))
    if kind == "error":
        st.error(text, icon=":material/error:")
    elif kind:
        st.success(text, icon=":material/check_circle:")


def _change(path: Path, change: Callable[[Judgements], T], done: str | None = None) -> tuple[bool, T | None]:
    """Apply `change` to the saved judgements; leave `done` or the error as the message.
    Returns whether it was saved, and what `change` returned."""
    try:
        result = saved.update(path, change)
    except JudgementsError as exc:
        _leave("error", notices.with_fix(exc.message, exc.fix))
        return False, None
    if done:
        _leave("success", done)
    return True, result


# -- the file


def load_or_offer_fresh_start(path: Path) -> Judgements | None:
    """The saved judgements; or, when the file cannot be read, None after saying so and offering to move it aside."""
    try:
        return saved.load(path)
    except CorruptJudgements as exc:
        notices.problem(exc.message, exc.fix)
        st.button("Move the file aside and start over", icon=":material/restart_alt:", on_click=_move_aside,
                  args=(path,), help="Renames it to <name>.corrupt-<date-time> in the same folder; nothing is deleted.")
        return None


def _move_aside(path: Path) -> None:
    try:
        moved = saved.move_aside(path)
    except JudgementsError as exc:
        _leave("error", notices.with_fix(exc.message, exc.fix))
        return
    _leave("success", escape(f"Moved the unreadable file to {moved}. Starting with no judgements."))


# -- questions in and out


def question_adder(path: Path) -> None:
    with st.form("evaluate_add", clear_on_submit=True, border=False):
        st.text_input("New question", key=_NEW_QUESTION, placeholder="Ask something your documents answer")
        st.form_submit_button("Add question", icon=":material/add:", on_click=_add_question, args=(path,))


def _add_question(path: Path) -> None:
    text = st.session_state.get(_NEW_QUESTION, "")
    if not saved.normalize_question(text):
        return
    ok, outcome = _change(path, lambda j: j.add_question(text))
    if ok:
        question, new = outcome
        st.session_state[_QUESTION] = question.question  # judge it next
        _leave("success", ("Added" if new else "Already there:") + f" “{escape(question.question)}”")


def import_export(path: Path, judgements: Judgements) -> None:
    """Import questions (CSV) or judgements (CSV or JSON, merged into the saved ones); download them as JSON or CSV."""
    with st.expander("Import or export questions and judgements", icon=":material/swap_vert:"):
        with st.form("evaluate_import", clear_on_submit=True, border=False):
            st.file_uploader(
                "A CSV with a `question` column (and optionally the judgement columns of an export), or an exported "
                "JSON file", type=["csv", "json"], key=_UPLOAD, max_upload_size=MAX_IMPORT_MB,
                help="Imported questions join yours; where both judged the same chunk, the imported judgement wins.")
            st.form_submit_button("Import", icon=":material/upload:", on_click=_import, args=(path,))
        left, right = st.columns(2)
        empty = not judgements.questions
        left.download_button("Download as JSON", saved.to_json(judgements).encode(), file_name="judgements.json",
                             mime="application/json", icon=":material/download:", on_click="ignore", disabled=empty)
        right.download_button("Download as CSV", saved.to_csv(judgements).encode(), file_name="judgements.csv",
                              mime="text/csv", icon=":material/download:", on_click="ignore", disabled=empty)
        st.caption(escape(f"Saved in {path}"))


def _import(path: Path) -> None:
    upload = st.session_state.get(_UPLOAD)
    if upload is None:
        _leave("error", "Choose a CSV or JSON file to import first.")
        return
    try:
        data = upload.getvalue()
        incoming = (saved.from_json(data, upload.name) if upload.name.lower().endswith(".json")
                    else saved.from_csv(data, upload.name))
    except JudgementsError as exc:
        _leave("error", notices.with_fix(exc.message, exc.fix))
        return
    ok, counts = _change(path, lambda j: j.merge(incoming))
    if ok:
        added, taken = counts
        for key in [k for k in st.session_state if str(k).startswith(_BOX)]:
            del st.session_state[key]  # the boxes show the saved judgements again
        _leave("success", escape(f"Imported {upload.name}: {plural(len(incoming.questions), 'question')} "
                                 f"({added} new), {plural(taken, 'judgement')}."))


# -- judging


def pick_question(path: Path, judgements: Judgements) -> JudgedQuestion:
    """Choose the question to judge (the one just added, at first); a button deletes it."""
    texts = [q.question for q in judgements.questions]
    if st.session_state.get(_QUESTION) not in texts:
        st.session_state.pop(_QUESTION, None)
    counts = {q.question: (len(q.relevant_ids()), len(q.judgements)) for q in judgements.questions}

    def label(text: str) -> str:
        relevant, judged = counts[text]
        return f"{snippet(text, 110)}  ({relevant} relevant of {judged} judged)" if judged else \
            f"{snippet(text, 110)}  (not judged yet)"

    chosen = st.selectbox("Question to judge", texts, key=_QUESTION, format_func=label)
    st.button("Delete this question", icon=":material/delete:", on_click=_delete_question, args=(path, chosen),
              help="Removes the question and its judgements from the saved file.")
    return judgements.find(chosen)


def _delete_question(path: Path, question: str) -> None:
    if _change(path, lambda j: j.remove_question(question), f"Deleted “{escape(question)}” and its judgements.")[0]:
        st.session_state.pop(_QUESTION, None)


def ranking_or_message(pipeline: Pipeline, question: str, key: tuple) -> Ranking | None:
    with st.spinner("Ranking the candidates with both encoders…"):
        return notices.or_message(lambda: resources.reranked(pipeline, question, key),
                                  "There are no documents yet, so there is nothing to judge.")


def existing(pipeline: Pipeline, judgements: Judgements) -> set[str]:
    return existing_chunk_ids(pipeline.store, judgements)


def judge(path: Path, question: JudgedQuestion, ranking: Ranking, alive: set[str]) -> None:
    """The pool of both rankings as boxes to tick, in document order and without scores; saving judges them all."""
    pool = judging_pool(ranking)
    stale = [j for j in question.judgements.values() if j.chunk_id not in alive]
    if stale:
        _show_stale(path, question, stale)
    if not pool:
        st.info("Retrieval found no candidates for this question, so there is nothing to judge.",
                icon=":material/search_off:")
        return
    shown = {s.chunk_id for s in pool}
    earlier = [j for j in question.judgements.values() if j.chunk_id in alive and j.chunk_id not in shown]
    st.caption(f"{plural(len(pool), 'chunk')}: the bi-encoder's top {POOL_DEPTH} and the cross-encoder's top "
               f"{POOL_DEPTH} together, in document order (file, page, position) and without scores, so that "
               "neither ranking shows through. Tick each chunk that answers the question; saving records the "
               "unticked ones as not relevant.")
    with st.form(f"judge-{question.key}", border=False):
        for source in pool:
            _box(question, source.chunk_id, source.location, source.text, question.judgements.get(source.chunk_id))
        if earlier:
            st.markdown("**Judged before, not among today's candidates**")
            for j in earlier:
                _box(question, j.chunk_id, j.location, j.text, j)
        st.form_submit_button("Save judgements", icon=":material/save:", type="primary", on_click=_save,
                              args=(path, question, [*pool, *earlier]))


def _box(question: JudgedQuestion, chunk_id: str, location: str, text: str, previous: Judgement | None) -> None:
    with st.container(border=True, gap="xsmall"):
        st.checkbox(escape(location), value=bool(previous and previous.relevant),
                    key=f"{_BOX}{question.key}:{chunk_id}")
        if previous is None and question.judgements:
            st.caption("new: not judged yet")
        st.text(text)


def _save(path: Path, question: JudgedQuestion, shown: Sequence[Source | Judgement]) -> None:
    ticked = {s.chunk_id for s in shown if st.session_state.get(f"{_BOX}{question.key}:{s.chunk_id}")}
    _change(path, lambda j: j.judge(question.question, shown, ticked),
            escape(f"Saved: {len(ticked)} relevant, {len(shown) - len(ticked)} not relevant."))


def _show_stale(path: Path, question: JudgedQuestion, stale: Sequence[Judgement]) -> None:
    relevant = sum(j.relevant for j in stale)
    with st.container(border=True):
        st.warning(f"{plural(len(stale), 'judged chunk')} of this question no longer "
                   f"{'exists' if len(stale) == 1 else 'exist'}: {'its' if len(stale) == 1 else 'their'} document "
                   "was replaced or deleted. " + ("The question is not scored until you judge its new candidates."
                                                  if relevant else "They no longer count."),
                   icon=":material/history:")
        for j in stale:
            st.markdown(escape(f"{'relevant' if j.relevant else 'not relevant'} · {j.location}"))
            st.text(snippet(j.text, 300))
        st.button("Forget the stale judgements", key=f"forget-{question.key}", icon=":material/delete_sweep:",
                  on_click=_forget, args=(path, question.question, [j.chunk_id for j in stale]),
                  help="Drops these judgements from the saved file, so that the question can be judged afresh.")


def _forget(path: Path, question: str, chunk_ids: list[str]) -> None:
    _change(path, lambda j: j.forget(question, chunk_ids),
            escape(f"Forgot {plural(len(chunk_ids), 'stale judgement')}."))


# -- every question, ranked both ways


def score_all(pipeline: Pipeline, judgements: Judgements, alive: set[str], key: tuple) -> list[QuestionResult] | None:
    """Each question scored; the judged ones ranked first (with a progress bar). None after showing a problem."""
    judged = [q for q in judgements.questions if q.judgements]
    bar = st.empty()
    rankings: dict[str, Ranking] = {}
    try:
        for done, question in enumerate(judged):
            if len(judged) > 1:
                bar.progress(done / len(judged), text=f"Ranking question {done + 1} of {len(judged)}…")
            rankings[question.question] = resources.reranked(pipeline, question.question, key)
    except RagError as exc:
        notices.problem(exc.message, exc.fix)
        return None
    finally:
        bar.empty()
    return [score_question(q, rankings.get(q.question), alive) for q in judgements.questions]
