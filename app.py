"""Chat with your documents: the entry point. Run with `streamlit run app.py`.

Every run: read the settings (RAG_*), open the shared store and models (once per process), draw the sidebar's
choices for this session, run the page chosen in the navigation, then draw the health line under the choices.
"""

from __future__ import annotations

import streamlit as st

from rag.errors import EmbedderMismatch, RagError
from rag.settings import Settings
from ui import notices, resources, session, sidebar

st.set_page_config(page_title="Chat with your documents", page_icon="💬", layout="wide")

page = st.navigation([
    st.Page("pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat", default=True),
    st.Page("pages/documents.py", title="Documents", icon=":material/description:", url_path="documents"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
])

try:
    base = Settings()
except Exception as exc:  # pydantic's ValidationError: a RAG_* variable with a bad value
    notices.problem(f"A setting is invalid: {exc}", "correct the RAG_* variable (or .env entry) named above")
    st.stop()

with st.sidebar:
    top = st.container()  # above the settings: a page's own sidebar part (Chat's conversations)
    settings, ollama = sidebar.session_settings(base)
try:
    pipeline = resources.pipeline_for(settings)
    documents = pipeline.store.count_documents()  # also: does the store answer?
except RagError as exc:  # the store cannot be opened, or the embedder cannot be loaded
    with st.sidebar:
        sidebar.health(settings, ollama, None)
    notices.problem(exc.message, exc.fix)
    if isinstance(exc, EmbedderMismatch):
        notices.offer_rebuild(settings, resources.bi_encoder)
    st.stop()

session.set_current(session.AppContext(settings, pipeline, ollama, documents, top))
page.run()
with st.sidebar:  # after the page, so that documents it added or deleted are counted
    sidebar.health(settings, ollama, pipeline.store)
