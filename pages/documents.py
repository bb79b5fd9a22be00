"""Documents: add files (several at once, with progress and an outcome per file), see what is in the library,
and delete documents."""

import math

import streamlit as st

from ui import documents, session

app = session.current()
library = app.pipeline.library

st.title("Documents")
with st.form("upload", clear_on_submit=True, border=True):
    files = st.file_uploader(
        "Add documents: PDF, Word (DOCX), Markdown, plain text or HTML", type=documents.FILE_TYPES,
        accept_multiple_files=True, max_upload_size=math.ceil(app.settings.max_file_mb),
        help="A file already in the library with the same content is left unchanged; with new content, replaced.",
    )
    add = st.form_submit_button("Add to library", icon=":material/upload:", type="primary")
if add and files:
    documents.ingest(library, [(f.name, f.getvalue()) for f in files])

for outcome in documents.last_outcomes():
    documents.show_outcome(outcome)

st.subheader("In the library")
records = library.documents()
if records:
    st.dataframe(documents.table(records), hide_index=True, placeholder="–")
    documents.delete_picker(library, [r.name for r in records])
else:
    st.info("No documents yet. Upload some above, or start with the sample documents about retrieval and RAG.")
    if st.button("Add the sample documents", icon=":material/library_add:"):
        documents.ingest(library, documents.sample_files())
        st.rerun()  # draw the table that now has them
if notice := documents.take_notice():
    st.success(notice)
