"""The LangChain retrievers: bi-encoder candidates from the store, and the same candidates rescored by a compressor.

    StoreRetriever                       question -> the N nearest chunks (Chroma via langchain-chroma), fused with
                                         keyword hits when hybrid; `bi_rank` / `bi_score` in each chunk's metadata
    RerankingRetriever(base, compressor) question -> base's chunks rescored by the compressor (ScoreKeepingReranker
                                         adds `ce_rank` / `ce_score`), best first

`RerankingRetriever` is LangChain's `ContextualCompressionRetriever` (which now lives in the legacy langchain-classic
package) written against langchain-core alone. Both are plain `BaseRetriever`s: `invoke`, `batch`, their async forms
and callbacks work as for any retriever, and they compose into LCEL chains (`rag/answers/chain.py`).
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import (AsyncCallbackManagerForRetrieverRun, BaseCallbackHandler,
                                      CallbackManagerForRetrieverRun)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from ..errors import NoDocuments
from .hybrid import KeywordIndex, committed_hits, fuse
from .rerank import BI_RANK, BI_SCORE
from .store import Store


class StoreRetriever(BaseRetriever):
    """The `k` chunks nearest to the question by the bi-encoder (with BM25 fused in when `hybrid`), best first.

    Only committed chunks are returned: a chunk whose document record does not vouch for it belongs to an
    interrupted or superseded write. `bi_score` is the cosine similarity, or the fused (RRF) score when `hybrid`.
    An empty store raises `NoDocuments` (with the fix) rather than returning nothing, so that a user is told why.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    k: int = 20
    hybrid: bool = False
    keyword_index: KeywordIndex | None = None
    top_n: int | None = None
    """Return only the best `top_n` of the `k` candidates (None: all of them)."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if not self.store.count_documents():
            raise NoDocuments("there are no documents in the store yet",
                              fix="add some with `python -m rag ingest PATH` or on the Documents page")
        hits = self.store.search(query, k=self.k)
        if self.hybrid:
            keyword = (self.keyword_index or KeywordIndex()).search(self.store, query, k=self.k)
            hits = fuse([[d for d, _ in hits], keyword], k=self.k)
        scores = {d.id: s for d, s in hits}
        kept, _ = committed_hits(self.store, [d for d, _ in hits])
        docs = [Document(page_content=d.page_content, id=d.id,
                         metadata={**d.metadata, BI_RANK: i, BI_SCORE: scores[d.id]})
                for i, d in enumerate(kept, start=1)]
        return docs if self.top_n is None else docs[: self.top_n]


class RerankingRetriever(BaseRetriever):
    """The base retriever's documents, rescored by `base_compressor` (best first; how many is the compressor's
    `top_n`). The compressor receives the callbacks of this run, so a trace shows both steps."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_retriever: BaseRetriever
    base_compressor: BaseDocumentCompressor

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        if not docs:
            return []
        return list(self.base_compressor.compress_documents(docs, query, callbacks=run_manager.get_child()))

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        docs = await self.base_retriever.ainvoke(query, config={"callbacks": run_manager.get_child()})
        if not docs:
            return []
        return list(await self.base_compressor.acompress_documents(docs, query, callbacks=run_manager.get_child()))


class StageTimer(BaseCallbackHandler):
    """Milliseconds per named run (retrievers and chain steps), from LangChain's own callbacks.

    Passed in a run's config, it times each stage where it runs, so that the chain needs no timing code of its
    own: `retrieve` is the StoreRetriever's run, `rerank` the RerankingRetriever's minus its base's.
    """

    def __init__(self) -> None:
        self._started: dict[UUID, tuple[str, float]] = {}
        self.ms: dict[str, float] = {}

    def _start(self, run_id: UUID, name: str | None) -> None:
        self._started[run_id] = (name or "?", time.perf_counter())

    def _end(self, run_id: UUID) -> None:
        name, start = self._started.pop(run_id, (None, 0.0))
        if name is not None:
            self.ms[name] = round(self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000, 1)

    # Retrievers and chain steps report alike: (serialized, input) at the start, the output at the end.
    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID, name: str | None = None,
                           **kwargs: Any) -> None:
        self._start(run_id, name)

    def on_retriever_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._started.pop(run_id, None)

    on_chain_start, on_chain_end, on_chain_error = on_retriever_start, on_retriever_end, on_retriever_error

    def stage_ms(self, name: str, minus: str | None = None) -> float | None:
        if name not in self.ms:
            return None
        return round(self.ms[name] - (self.ms.get(minus, 0.0) if minus else 0.0), 1)
