"""Chat: ask about your documents. Each answer streams in, cites its sources as [n], and lists them below it.
Each turn is saved as it ends; the sidebar lists the saved conversations, to reopen, rename, download or delete."""

import streamlit as st

from ui import chat, conversations, notices, resources, session

app = session.current()
path = app.settings.conversations_file
conversations.reopen(path)
listing = app.sidebar_top  # filled last, so that a conversation this run starts is listed

st.title("Chat with your documents")
rerank = chat.rerank_toggle(resources.reranker_problem(app.settings))
if app.documents == 0:
    notices.no_documents("No documents yet: add some, then ask about them here.")

states = conversations.states(app.pipeline.store)
for index, turn in enumerate(chat.turns()):
    with st.chat_message("user"):
        st.text(turn.question)
    with st.chat_message("assistant"):
        chat.show_turn(turn, index, states)

if question := st.chat_input("Ask a question about your documents", submit_mode="stop"):
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        chat.answer_turn(app.pipeline, question, rerank, save=conversations.saver(path))

with listing:
    conversations.sidebar(path, states)
