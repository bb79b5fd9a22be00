"""Question in; ranked sources and a streamed answer out, through the LangChain runnables of `rag/answers/chain.py`.

    question --(rewrite if follow-up)--> StoreRetriever: bi-encoder top N from Chroma
             --RerankingRetriever: cross-encoder compressor--> pool, best first --> top k
             --prompt with [1]..[k] | ChatOllama | text--> streamed answer, citations checked

`Pipeline.retriever()` and `Pipeline.chain()` hand the same runnables to LangChain code of one's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnablePassthrough

from .answers.chain import RankingShape, as_input, generation, prepare, state_of
from .answers.declines import is_decline, is_unsupported
from .answers.evidence import EvidenceCompressor, attribute
from .answers.llm import make_chat_model, translate_error
from .answers.prompt import CitationFilter, build_rewrite_messages, standalone_question
from .documents.library import Library
from .errors import RagError
from .results import Answer, Ranking, elapsed_ms
from .retrieval.embeddings import BiEncoderPairScorer
from .retrieval.hybrid import KeywordIndex
from .retrieval.rerank import RememberingCrossEncoder, ScoreKeepingReranker
from .retrieval.retriever import RerankingRetriever, StageTimer, StoreRetriever
from .retrieval.store import Store
from .settings import Settings

History = Sequence[tuple[str, str]]
ChatModelFactory = Callable[..., BaseChatModel]


class Pipeline:
    """The retrieve -> rerank -> answer pipeline over one store.

    The cross-encoder is given as a zero-argument loader so that questions asked without reranking never load it.
    `chat_model` builds the LLM client (ChatOllama by default); it receives the settings and keyword overrides.

    `rerank`, `candidates`, `keep` and `hybrid` default to the settings. With `fallback=True`, a cross-encoder that
    cannot load does not fail the question: the pool keeps the bi-encoder order and `Ranking.rerank_notice` says why
    (the app and the CLI ask so; an evaluation does not, since it would measure something else than it says).
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
        self._rerank_problem: RagError | None = None

    @property
    def reranker_name(self) -> str:
        return getattr(self._cross_encoder, "name", None) or self.settings.reranker_model

    def cross_encoder(self) -> BaseCrossEncoder:
        """The cross-encoder, loaded on first use; a load that failed is not retried by this pipeline."""
        if self._rerank_problem is not None:
            raise self._rerank_problem
        try:
            self._cross_encoder = _loaded(self._cross_encoder)
        except RagError as exc:
            self._rerank_problem = exc
            raise
        return self._cross_encoder

    def remember_scores(self) -> RememberingCrossEncoder:
        """From now on score each (question, chunk) pair once, until the returned object's `forget()`."""
        source = self._cross_encoder
        remembering = RememberingCrossEncoder(lambda: _loaded(source))
        self._cross_encoder = remembering
        return remembering

    # -- the runnables
    def _plan(self, rerank: bool | None, candidates: int | None, keep: int | None, hybrid: bool | None,
              fallback: bool, top_n: int | None) -> tuple[BaseRetriever, RankingShape]:
        rerank = self.settings.rerank if rerank is None else rerank
        hybrid = self.settings.hybrid if hybrid is None else hybrid
        notice, cross_encoder = None, None
        if rerank:
            try:
                cross_encoder = self.cross_encoder()
            except RagError as exc:
                if not fallback:
                    raise
                notice = rerank_unavailable(exc)
        retriever: BaseRetriever = StoreRetriever(
            store=self.store, k=candidates or self.settings.candidates, hybrid=hybrid,
            keyword_index=self.keyword_index, top_n=None if cross_encoder else top_n)
        if cross_encoder is not None:
            retriever = RerankingRetriever(base_retriever=retriever,
                                           base_compressor=ScoreKeepingReranker(model=cross_encoder, top_n=top_n))
        shape = RankingShape(keep=keep or self.settings.keep, reranked=cross_encoder is not None,
                             reranker=self.reranker_name, embedder=self.store.embedder.name, hybrid=hybrid,
                             notice=notice)
        return retriever, shape

    def retriever(self, rerank: bool | None = None, candidates: int | None = None, keep: int | None = None,
                  hybrid: bool | None = None, fallback: bool = False) -> BaseRetriever:
        """A LangChain retriever: the best `keep` chunks (default: the setting, 3) of `candidates` bi-encoder
        candidates, reranked by the cross-encoder when `rerank`; both ranks and scores in each chunk's metadata."""
        return self._plan(rerank, candidates, None, hybrid, fallback, top_n=keep or self.settings.keep)[0]

    def retrieval(self, rerank: bool | None = None, candidates: int | None = None, keep: int | None = None,
                  hybrid: bool | None = None, fallback: bool = False) -> Runnable:
        """str | {question, history} -> {question, history, standalone_question, documents, ranking}."""
        retriever, shape = self._plan(rerank, candidates, keep, hybrid, fallback, top_n=None)
        to_ranking = RunnableLambda(lambda s: shape.to_ranking(s["standalone_question"], s["documents"]),
                                    name="ranking")
        return (RunnableLambda(as_input, name="input")
                | RunnablePassthrough.assign(standalone_question=RunnableLambda(self._rewrite_step, name="rewrite"))
                | RunnablePassthrough.assign(documents=itemgetter("standalone_question") | retriever)
                | RunnablePassthrough.assign(ranking=to_ranking))

    def preparation(self) -> Runnable:
        """{ranking, ...} -> the same with `prepared`: the gate's verdict, the evidence and the sent chunks."""
        return RunnablePassthrough.assign(prepared=RunnableLambda(
            lambda s: prepare(s["ranking"], self.settings, self.evidence_compressor), name="prepare"))

    def generation(self) -> Runnable:
        """{standalone_question, prepared} -> the answer's text, streamed."""
        return generation(self._chat_model(self.settings), self.settings.prompt_layout)

    def chain(self, rerank: bool | None = None, candidates: int | None = None, keep: int | None = None,
              hybrid: bool | None = None, fallback: bool = False, with_sources: bool = False) -> Runnable:
        """The whole LCEL chain: str | {question, history} -> answer text (`ask` runs these same runnables).

        With `with_sources` it returns the chain's state with the answer under "answer" (streamed as it comes):
        `ranking` holds the pool in both orders, `prepared.sent` what the LLM read.
        """
        head = self.retrieval(rerank, candidates, keep, hybrid, fallback) | self.preparation()
        if with_sources:
            return head | RunnablePassthrough.assign(answer=self.generation())
        return head | self.generation()

    # -- retrieval
    def retrieve(self, question: str, rerank: bool | None = None, candidates: int | None = None,
                 keep: int | None = None, hybrid: bool | None = None, fallback: bool = False,
                 callbacks: list[BaseCallbackHandler] | None = None) -> Ranking:
        """Candidates by the bi-encoder (with BM25 when `hybrid`), rescored by the cross-encoder when `rerank`;
        the best `keep` numbered."""
        timer = StageTimer()
        state = self.retrieval(rerank, candidates, keep, hybrid, fallback).invoke(
            question, config=_config(timer, callbacks))
        return _timed(state["ranking"], timer)

    # -- answering
    def rewrite(self, question: str, history: History, config: RunnableConfig | None = None) -> str:
        """A standalone version of a follow-up question (the question itself when there is no history)."""
        if not history or not self.settings.rewrite_followups:
            return question
        model = self._chat_model(self.settings, num_predict=64)
        try:
            reply = (model | StrOutputParser()).invoke(build_rewrite_messages(question, history), config=config)
        except Exception as exc:
            raise translate_error(exc, self.settings) from exc
        return standalone_question(reply, question, history)

    def _rewrite_step(self, state: dict, config: RunnableConfig) -> str:
        return self.rewrite(state["question"], state["history"], config=config)

    def pair_scorer(self, reranked: bool) -> BaseCrossEncoder:
        """A pair scorer: the cross-encoder when `reranked`, else the bi-encoder's cosine (which also attributes
        citations, whatever the ranking)."""
        return self.cross_encoder() if reranked else BiEncoderPairScorer(self.store.embedder)

    def evidence_compressor(self, reranked: bool) -> EvidenceCompressor:
        return EvidenceCompressor(scorer=self.pair_scorer(reranked), context=self.settings.context,
                                  max_chars=self.settings.evidence_chars, sentences=self.settings.evidence_sentences)

    def ask(self, question: str, history: History = (), rerank: bool | None = None,
            candidates: int | None = None, keep: int | None = None, hybrid: bool | None = None,
            fallback: bool = False, callbacks: list[BaseCallbackHandler] | None = None) -> Answer:
        """Retrieve now; return an Answer whose tokens stream from the LLM as they are read.

        Errors of the LLM (unreachable, model missing, cut off) are raised as RagError while the tokens are read,
        after `answer.sources` is already known, so that a caller can still show the sources.
        """
        question = question.strip()
        if not question:
            raise RagError("the question is empty")
        timer = StageTimer()
        config = _config(timer, callbacks)
        state = self.retrieval(rerank, candidates, keep, hybrid, fallback).invoke(
            {"question": question, "history": list(history)}, config=config)
        _timed(state["ranking"], timer, rewritten=bool(history) and self.settings.rewrite_followups)
        return self._answer(state, config)

    def answer_from(self, ranking: Ranking, question: str | None = None,
                    callbacks: list[BaseCallbackHandler] | None = None) -> Answer:
        """An Answer from exactly `ranking.kept`, numbered [1]..[k] (Compare answers each side's ranking with it).

        When the pool's best scores are below the gate's thresholds (`declines.not_covered`), the LLM is not called and
        the outcome is "not_covered". Otherwise the sentences of the kept chunks are scored against the question
        (`answer.evidence`) before the answer streams, and its sentences are attributed to chunks after
        (`answer.sentences`). LLM errors are raised as RagError while the tokens are read.
        """
        return self._answer(state_of(ranking, question), _config(StageTimer(), callbacks))

    def _answer(self, state: dict, config: RunnableConfig) -> Answer:
        ranking: Ranking = state["ranking"]
        start = time.perf_counter()
        state = self.preparation().invoke(state, config=config)
        prepared = state["prepared"]
        answer = Answer(state["question"], ranking.question, ranking, "answered", iter(()))
        if prepared.not_covered:
            answer.outcome = "not_covered"
            answer.tokens = self._fixed(answer, prepared.not_covered)
            return answer
        ranking.timings.evidence_ms = elapsed_ms(start)
        answer.evidence, answer.sent = prepared.evidence, prepared.sent
        answer.tokens = self._stream(answer, self.generation().stream(state, config=config))
        return answer

    def _fixed(self, answer: Answer, text: str) -> Iterator[str]:
        answer.text = text
        yield text

    def _stream(self, answer: Answer, raw: Iterator[str]) -> Iterator[str]:
        """Stream the answer (the LLM reading `answer.sent`); then judge it."""
        sources = answer.ranking.kept
        citations = CitationFilter(s.number for s in sources)
        start = time.perf_counter()
        try:
            for piece in citations.filter(raw):
                if answer.ranking.timings.first_token_ms is None:
                    answer.ranking.timings.first_token_ms = elapsed_ms(start)
                answer.text += piece
                yield piece
        except Exception as exc:
            answer.cut_off = bool(answer.text)
            raise translate_error(exc, self.settings) from exc
        finally:
            answer.citations, answer.dropped_citations = citations.cited, citations.dropped
            answer.ranking.timings.answer_ms = elapsed_ms(start)
        if is_decline(answer.text):
            answer.outcome = "declined"
        elif sources:
            # The bi-encoder whatever the ranking: it measured better than the cross-encoder at this (AttributionRule).
            answer.sentences = attribute(answer.standalone_question, answer.text, sources,
                                         self.pair_scorer(reranked=False))
            if is_unsupported(answer.sentences):
                answer.outcome = "unsupported"


def rerank_unavailable(exc: RagError) -> str:
    """The notice an answer carries when it was ranked without the cross-encoder it asked for."""
    return f"reranking unavailable: {exc.message}" + (f" (fix: {exc.fix})" if exc.fix else "")


def _config(timer: StageTimer, callbacks: list[BaseCallbackHandler] | None) -> RunnableConfig:
    return {"callbacks": [timer, *(callbacks or [])]}


def _timed(ranking: Ranking, timer: StageTimer, rewritten: bool = False) -> Ranking:
    t = ranking.timings
    t.rewrite_ms = timer.stage_ms("rewrite") if rewritten else None
    t.retrieve_ms = timer.stage_ms("StoreRetriever")
    t.rerank_ms = timer.stage_ms("RerankingRetriever", minus="StoreRetriever") if ranking.reranked else None
    return ranking


def _loaded(cross_encoder: Callable[[], BaseCrossEncoder] | BaseCrossEncoder | None) -> BaseCrossEncoder:
    if cross_encoder is None:
        raise RagError("no cross-encoder is configured", fix="set RAG_RERANKER_MODEL, or ask without reranking")
    return cross_encoder if isinstance(cross_encoder, BaseCrossEncoder) else cross_encoder()


def build_pipeline(settings: Settings | None = None, defer_embedder: bool = False) -> Pipeline:
    """The pipeline with the real parts the settings name: bi-encoder, Chroma, cross-encoder (loaded on first use).

    `defer_embedder`: the bi-encoder too loads on first use (for commands that may never embed)."""
    from .retrieval.embeddings import DeferredBiEncoder, load_bi_encoder
    from .retrieval.rerank import load_cross_encoder

    settings = settings or Settings()
    store = Store(settings, DeferredBiEncoder(settings) if defer_embedder else load_bi_encoder(settings))
    return Pipeline(settings, store, lambda: load_cross_encoder(settings))
