"""Evaluate: your own questions, the chunks that answer them, and what the cross-encoder does for retrieval on your
documents: Recall@3, MRR@10 and nDCG@3 with and without it, per question and overall, and the not-covered threshold
that the same judgements suggest."""

import streamlit as st

from ui import evaluate, evaluate_results, notices, resources, session

app = session.current()
path = app.settings.judgements_path

st.title("Evaluate retrieval")
st.caption("Write a few questions, tick the chunks that answer each, and see how well the bi-encoder alone and the "
           "cross-encoder rank them on your documents. Judgements are saved beside the store.")
evaluate.show_notice()
judgements = evaluate.load_or_offer_fresh_start(path)
if judgements is None:
    st.stop()

evaluate.question_adder(path)
evaluate.import_export(path, judgements)
if app.documents == 0:
    notices.no_documents("No documents yet: add some, then judge which of their chunks answer your questions.")
    st.stop()
if not judgements.questions:
    st.info("Add a question above, or import a CSV with a `question` column.", icon=":material/help:")
    st.stop()

key = resources.ranking_key(app.pipeline)
alive = evaluate.existing(app.pipeline, judgements)
# A key and a rerun on switching make the tabs remember the open one even when a message above them comes or goes.
judge, results_tab, threshold_tab = st.tabs(["Judge", "Results", "Not-covered threshold"], key="evaluate_tab",
                                            on_change="rerun")

with judge:
    question = evaluate.pick_question(path, judgements)
    ranking = evaluate.ranking_or_message(app.pipeline, question.question, key)
    if ranking:
        evaluate.judge(path, question, ranking, alive)

with results_tab:
    results = evaluate.score_all(app.pipeline, judgements, alive, key)
    if results is not None:
        evaluate_results.show_overall(results, app.settings.hybrid)
        evaluate_results.show_changes(results)

with threshold_tab:
    st.caption("When a question's best cross-encoder score is below the threshold, the LLM is not asked. Below: the "
               "cross-encoder scores of the chunks you judged, among each question's candidates.")
    if results is not None:
        evaluate_results.show_threshold(results, app.settings.min_rerank_score)
