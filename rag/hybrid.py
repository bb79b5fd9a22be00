"""Keyword search beside the bi-encoder: an in-memory BM25 index over the store's chunks, fused with the dense
ranking by reciprocal-rank fusion (RRF), as LangChain's docs now show it done by hand."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
from langchain_core.documents import Document

RRF_K = 60  # the constant of Cormack et al. (2009); it damps the weight of the very top ranks
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class KeywordIndex:
    """BM25 over every chunk of a store, rebuilt when the store's contents change.

    The index is keyed by the store's document records (names and hashes): ingest and delete change them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._docs: list[Document] = []
        self._vocab: list[set[str]] = []
        self._bm25 = None

    def search(self, store, query: str, k: int) -> list[Document]:
        with self._lock:
            key = tuple(sorted((r.name, r.sha256) for r in store.list_records()))
            if key != self._key:
                self._build(store.get_chunks())
                self._key = key
            if self._bm25 is None:
                return []
            terms = tokenize(query)
            scores = self._bm25.get_scores(terms)
            docs, vocab = self._docs, self._vocab
        # Only chunks sharing a word with the query count as keyword hits (in a tiny corpus BM25's IDF can be <= 0).
        matching = [i for i in np.argsort(-scores, kind="stable") if vocab[i].intersection(terms)]
        return [docs[i] for i in matching[:k]]

    def _build(self, docs: list[Document]) -> None:
        from rank_bm25 import BM25Okapi

        tokens = [tokenize(d.page_content) for d in docs]
        self._docs = docs
        self._vocab = [set(t) for t in tokens]
        self._bm25 = BM25Okapi(tokens) if docs else None


def fuse(rankings: Sequence[Sequence[Document]], k: int) -> list[tuple[Document, float]]:
    """Reciprocal-rank fusion of several rankings (by document id); the best k with their fused scores."""
    scores: dict[str, float] = {}
    first_seen: dict[str, Document] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc.id] = scores.get(doc.id, 0.0) + 1.0 / (RRF_K + rank)
            first_seen.setdefault(doc.id, doc)
    best = sorted(scores, key=lambda i: -scores[i])[:k]
    return [(first_seen[i], scores[i]) for i in best]
