"""Question in; ranked sources and a streamed answer out.

    question --(rewrite if follow-up)--> bi-encoder top N from Chroma --cross-encoder--> top k
             --LCEL chain: prompt with [1]..[k] | ChatOllama | text--> streamed answer, citations checked
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda

from .declines import is_decline, not_covered
from .embeddings import BiEncoderPairScorer
from .errors import NoDocuments, RagError
from .evidence import EvidenceCompressor, attribute
from .hybrid import KeywordIndex, fuse
from .library import Library
from .llm import make_chat_model, translate_error
from .prompt import CitationFilter, build_messages, build_rewrite_messages, standalone_question
from .rerank import BI_RANK, BI_SCORE, CE_RANK, CE_SCORE, RememberingCrossEncoder, ScoreKeepingReranker
from .results import Answer, Ranking, Source, Timings
from .results import elapsed_ms as _ms
from .settings import Settings
from .store import Store

History = Sequence[tuple[str, str]]
ChatModelFactory = Callable[..., BaseChatModel]


class Pipeline:
    """The retrieve -> rerank -> answer pipeline over one store.

    The cross-encoder is given as a zero-argument loader so that questions asked without reranking never load it.
    `chat_model` builds the LLM client (ChatOllama by default); it receives the settings and keyword overrides.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        cross_encoder: Callable[[], BaseCrossEncoder] | BaseCrossEncoder | None,
        chat_model: ChatModelFactory = make_chat_model,
        keyword_index: KeywordIndex | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.library = Library(store, settings)
        self._cross_encoder = cross_encoder
        self._chat_model = chat_model
        self.keyword_index = keyword_index or KeywordIndex()

    @property
    def reranker_name(self) -> str:
        return getattr(self._cross_encoder, "name", None) or self.settings.reranker_model

    def cross_encoder(self) -> BaseCrossEncoder:
        self._cross_encoder = _loaded(self._cross_encoder)
        return self._cross_encoder

    def remember_scores(self) -> RememberingCrossEncoder:
        """From now on score each (question, chunk) pair once, until the returned object's `forget()`."""
        source = self._cross_encoder
        remembering = RememberingCrossEncoder(lambda: _loaded(source))
        self._cross_encoder = remembering
        return remembering

    # -- retrieval
    def retrieve(self, question: str, rerank: bool | None = None, candidates: int | None = None,
                 keep: int | None = None, hybrid: bool | None = None) -> Ranking:
        """Candidates by the bi-encoder (with BM25 when `hybrid`), rescored by the cross-encoder when `rerank`;
        the best `keep` numbered."""
        rerank = self.settings.rerank if rerank is None else rerank
        hybrid = self.settings.hybrid if hybrid is None else hybrid
        candidates = candidates or self.settings.candidates
        keep = keep or self.settings.keep
        timings = Timings()
        start = time.perf_counter()
        if not self.store.count_documents():
            raise NoDocuments("there are no documents in the store yet",
                              fix="add some with `python -m rag ingest PATH` or on the Documents page")
        hits = self.store.search(question, k=candidates)
        if hybrid:
            keyword = self.keyword_index.search(self.store, question, k=candidates)
            hits = fuse([[d for d, _ in hits], keyword], k=candidates)
        # Chunks no record vouches for belong to an interrupted or superseded write.
        names = sorted({str(d.metadata.get("source")) for d, _ in hits})
        committed = {(r.name, r.sha256) for r in self.store.get_records(names)}
        hits = [(d, s) for d, s in hits if (d.metadata.get("source"), d.metadata.get("doc_sha")) in committed]
        docs = [
            Document(page_content=d.page_content, id=d.id, metadata={**d.metadata, BI_RANK: i, BI_SCORE: s})
            for i, (d, s) in enumerate(hits, start=1)
        ]
        timings.retrieve_ms = _ms(start)
        if rerank and docs:
            start = time.perf_counter()
            ranked = ScoreKeepingReranker(model=self.cross_encoder(), top_n=None).compress_documents(docs, question)
            timings.rerank_ms = _ms(start)
        else:
            ranked = docs
        numbers = {d.id: n for n, d in enumerate(ranked[:keep], start=1)}
        by_id = {d.id: _to_source(d, numbers.get(d.id)) for d in ranked}
        pool = [by_id[d.id] for d in docs]
        kept = [by_id[d.id] for d in ranked[:keep]]
        return Ranking(question=question, candidates=pool, kept=kept, reranked=bool(rerank and docs),
                       reranker=self.reranker_name if rerank else None, embedder=self.store.embedder.name,
                       timings=timings, hybrid=hybrid)

    # -- answering
    def rewrite(self, question: str, history: History) -> str:
        """A standalone version of a follow-up question (the question itself when there is no history)."""
        if not history or not self.settings.rewrite_followups:
            return question
        model = self._chat_model(self.settings, num_predict=64)
        try:
            reply = (model | StrOutputParser()).invoke(build_rewrite_messages(question, history))
        except Exception as exc:
            raise translate_error(exc, self.settings) from exc
        return standalone_question(reply, question, history)

    def answer_chain(self):
        """The LCEL chain: {question, sources} -> messages -> ChatOllama -> text chunks."""
        prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("messages")])
        to_messages = RunnableLambda(lambda x: {"messages": build_messages(x["question"], x["sources"],
                                                                    self.settings.prompt_layout)})
        return to_messages | prompt | self._chat_model(self.settings) | StrOutputParser()

    def pair_scorer(self, reranked: bool) -> BaseCrossEncoder:
        """A pair scorer: the cross-encoder when `reranked`, else the bi-encoder's cosine (which also attributes
        citations, whatever the ranking)."""
        return self.cross_encoder() if reranked else BiEncoderPairScorer(self.store.embedder)

    def evidence_compressor(self, reranked: bool) -> EvidenceCompressor:
        return EvidenceCompressor(scorer=self.pair_scorer(reranked), context=self.settings.context,
                                  max_chars=self.settings.evidence_chars, sentences=self.settings.evidence_sentences)

    def ask(self, question: str, history: History = (), rerank: bool | None = None,
            candidates: int | None = None, keep: int | None = None, hybrid: bool | None = None) -> Answer:
        """Retrieve now; return an Answer whose tokens stream from the LLM as they are read.

        Errors of the LLM (unreachable, model missing, cut off) are raised as RagError while the tokens are read,
        after `answer.sources` is already known, so that a caller can still show the sources.
        """
        question = question.strip()
        if not question:
            raise RagError("the question is empty")
        timings_start = time.perf_counter()
        standalone = self.rewrite(question, history)
        rewrite_ms = _ms(timings_start) if standalone is not question else None
        ranking = self.retrieve(standalone, rerank=rerank, candidates=candidates, keep=keep, hybrid=hybrid)
        ranking.timings.rewrite_ms = rewrite_ms
        return self.answer_from(ranking, question=question)

    def answer_from(self, ranking: Ranking, question: str | None = None) -> Answer:
        """An Answer from exactly `ranking.kept`, numbered [1]..[k] (Compare answers each side's ranking with it).

        When the pool's best scores are below the gate's thresholds (`declines.not_covered`), the LLM is not called and
        the outcome is "not_covered". Otherwise the sentences of the kept chunks are scored against the question
        (`answer.evidence`) before the answer streams, and its sentences are attributed to chunks after
        (`answer.sentences`). LLM errors are raised as RagError while the tokens are read.
        """
        question = question or ranking.question
        message = not_covered(ranking, self.settings)
        if message:
            answer = Answer(question, ranking.question, ranking, "not_covered", iter(()))
            answer.tokens = self._fixed(answer, message)
            return answer
        answer = Answer(question, ranking.question, ranking, "answered", iter(()))
        start = time.perf_counter()
        documents = [Document(page_content=s.text, id=s.chunk_id, metadata={"number": s.number}) for s in ranking.kept]
        compressed = self.evidence_compressor(ranking.reranked).compress_documents(documents, ranking.question)
        answer.evidence = {d.metadata["number"]: d.metadata["evidence"] for d in compressed}
        sent = [replace(s, text=d.page_content) for s, d in zip(ranking.kept, compressed)]
        answer.sent = [s for s in sent if s.text.strip()]
        ranking.timings.evidence_ms = _ms(start)
        answer.tokens = self._stream(answer, answer.sent)
        return answer

    def _fixed(self, answer: Answer, text: str) -> Iterator[str]:
        answer.text = text
        yield text

    def _stream(self, answer: Answer, sent: list[Source]) -> Iterator[str]:
        """Stream the answer to `sent` (the kept chunks as the LLM reads them); then judge it."""
        sources = answer.ranking.kept
        citations = CitationFilter(s.number for s in sources)
        start = time.perf_counter()
        raw = self.answer_chain().stream({"question": answer.standalone_question, "sources": sent})
        try:
            for piece in citations.filter(raw):
                if answer.ranking.timings.first_token_ms is None:
                    answer.ranking.timings.first_token_ms = _ms(start)
                answer.text += piece
                yield piece
        except Exception as exc:
            answer.cut_off = bool(answer.text)
            raise translate_error(exc, self.settings) from exc
        finally:
            answer.citations, answer.dropped_citations = citations.cited, citations.dropped
            answer.ranking.timings.answer_ms = _ms(start)
        if is_decline(answer.text):
            answer.outcome = "declined"
        elif sources:
            # The bi-encoder whatever the ranking: it measured better than the cross-encoder at this (AttributionRule).
            answer.sentences = attribute(answer.standalone_question, answer.text, sources,
                                         self.pair_scorer(reranked=False))


def _loaded(cross_encoder: Callable[[], BaseCrossEncoder] | BaseCrossEncoder | None) -> BaseCrossEncoder:
    if cross_encoder is None:
        raise RagError("no cross-encoder is configured", fix="set RAG_RERANKER_MODEL, or ask without reranking")
    return cross_encoder if isinstance(cross_encoder, BaseCrossEncoder) else cross_encoder()


def _to_source(doc: Document, number: int | None) -> Source:
    m = doc.metadata
    return Source(
        chunk_id=str(doc.id), file=str(m.get("source", "?")), page=m.get("page"),
        start_index=int(m.get("start_index", 0)), text=doc.page_content, bi_rank=int(m[BI_RANK]),
        bi_score=round(float(m[BI_SCORE]), 6), ce_rank=m.get(CE_RANK),
        ce_score=None if m.get(CE_SCORE) is None else round(float(m[CE_SCORE]), 6), number=number,
    )


def build_pipeline(settings: Settings | None = None) -> Pipeline:
    """The pipeline with the real parts the settings name: bi-encoder, Chroma, cross-encoder (loaded on first use)."""
    from .embeddings import load_bi_encoder
    from .rerank import load_cross_encoder

    settings = settings or Settings()
    store = Store(settings, load_bi_encoder(settings))
    return Pipeline(settings, store, lambda: load_cross_encoder(settings))
