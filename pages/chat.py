"""Chat: ask about your documents. Each answer streams in, cites its sources as [n], and lists them below it."""

import streamlit as st

from ui import chat, notices, resources, session

app = session.current()

st.title("Chat with your documents")
rerank = chat.rerank_toggle(resources.reranker_problem(app.settings))
if app.documents == 0:
    notices.no_documents("No documents yet: add some, then ask about them here.")

for index, turn in enumerate(chat.turns()):
    with st.chat_message("user"):
        st.text(turn.question)
    with st.chat_message("assistant"):
        chat.show_turn(turn, index)

if question := st.chat_input("Ask a question about your documents", submit_mode="stop"):
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        chat.answer_turn(app.pipeline, question, rerank)
