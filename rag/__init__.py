"""Chat with your documents, with the retrieval and the reranking in view.

For LangChain code of one's own (see the README, "Use the retriever and the chain in your own LangChain code"):

    from rag import build_pipeline
    pipeline = build_pipeline()            # the settings from RAG_* variables
    retriever = pipeline.retriever()       # a BaseRetriever: bi-encoder candidates, reranked, best 3
    chain = pipeline.chain()               # an LCEL runnable: question -> answer text

The names below load on first use, so that `python -m rag` starts without importing the models' libraries.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Pipeline": "rag.pipeline", "build_pipeline": "rag.pipeline", "Settings": "rag.settings",
    "StoreRetriever": "rag.retrieval.retriever", "RerankingRetriever": "rag.retrieval.retriever",
    "ScoreKeepingReranker": "rag.retrieval.rerank", "SentenceTransformerCrossEncoder": "rag.retrieval.rerank",
    "Store": "rag.retrieval.store", "BiEncoder": "rag.retrieval.embeddings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
