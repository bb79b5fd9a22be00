"""Compare: one question, one candidate pool, ranked by the bi-encoder (left) and by the cross-encoder (right);
how far each chunk moved, time per stage, and an answer from each side's top k."""

import streamlit as st

from ui import compare, session

app = session.current()

st.title("Compare rankings")
st.caption("The same candidates in two orders: the bi-encoder's (fast, question and chunk embedded apart) and the "
           "cross-encoder's (slower, reads question and chunk together). ✔ marks the top k each would send.")
question = st.text_input("Question", key="compare_question", placeholder="Ask something your documents answer")
ranking = compare.ranking_or_message(app.pipeline, question) if question else None

if ranking:
    compare.show_timings(ranking)
    left, right = st.columns(2)
    with left:
        st.subheader(compare.side_title(ranking, "bi-encoder"))
        st.caption(compare.side_model(ranking, "bi-encoder"))
        st.dataframe(compare.bi_rows(ranking), hide_index=True, column_config=compare.COLUMNS, height="content")
    with right:
        st.subheader(compare.side_title(ranking, "cross-encoder"))
        if ranking.reranked:
            st.caption(compare.side_model(ranking, "cross-encoder"))
            st.dataframe(compare.ce_rows(ranking), hide_index=True, column_config=compare.COLUMNS, height="content")
        else:
            compare.no_cross_encoder_side(ranking)

    if ranking.reranked:
        st.subheader("Rank moves")
        st.altair_chart(compare.slope_chart(ranking), width="stretch")

    st.subheader("Answers")
    generate = st.button("Generate both answers", icon=":material/play_arrow:",
                         help="Ask the LLM twice: with the bi-encoder's top k, and with the cross-encoder's.")
    columns = st.columns(2)
    if generate:
        compare.answer_both(app.pipeline, ranking, columns)
    else:
        for column, answer in zip(columns, compare.stored_answers()):
            with column:
                compare.show_answer(answer)
