"""The pipeline a user would write from LangChain's documentation, with the same models: the baseline of bench/speed.py.

This is the one module that imports `langchain_classic`, `langchain_community` and `langchain_huggingface`
(versions pinned in requirements-bench.txt); nothing in `rag/` does.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

with warnings.catch_warnings():
    # langchain_community announces its own sunset on import; the baseline is what users have, warning and all.
    warnings.simplefilter("ignore")
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_huggingface import HuggingFaceEmbeddings


def split(documents: list[Document], chunk_size: int = 1000, chunk_overlap: int = 150) -> list[Document]:
    return RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap).split_documents(documents)


def _model_kwargs(dtype: Any) -> dict[str, Any]:
    # What a user writes to switch the encoders' number format: sentence-transformers hands `model_kwargs` on to
    # transformers' from_pretrained. None is each class's default (float32).
    return {} if dtype is None else {"model_kwargs": {"dtype": dtype}}


def load_embeddings(model: str, dtype: Any = None) -> HuggingFaceEmbeddings:
    return HuggingFaceEmbeddings(model_name=model, model_kwargs=_model_kwargs(dtype))


def load_cross_encoder(model: str, dtype: Any = None) -> HuggingFaceCrossEncoder:
    return HuggingFaceCrossEncoder(model_name=model, model_kwargs=_model_kwargs(dtype))


def index(chunks: list[Document], embeddings: HuggingFaceEmbeddings, folder: Path) -> Chroma:
    return Chroma.from_documents(chunks, embeddings, persist_directory=str(folder))


def reranking_retriever(store: Chroma, cross_encoder: HuggingFaceCrossEncoder, candidates: int,
                        keep: int = 3) -> ContextualCompressionRetriever:
    return ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=cross_encoder, top_n=keep),
        base_retriever=store.as_retriever(search_kwargs={"k": candidates}),
    )
