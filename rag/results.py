"""The small typed objects that cross from the pipeline to the UI and the CLI (no LangChain internals)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal


def elapsed_ms(start: float) -> float:
    """Milliseconds since `start` (a `time.perf_counter()` reading), to a tenth: the unit of `Timings`."""
    return round((time.perf_counter() - start) * 1000, 1)


@dataclass(frozen=True)
class Source:
    """One chunk as a candidate: where it comes from, its text, and how each ranker placed it.

    Ranks are 1-based. `ce_rank`/`ce_score` are None when reranking was off.
    `number` is the citation number [n] when the chunk was sent to the LLM, else None.
    """

    chunk_id: str
    file: str
    page: int | None
    start_index: int
    text: str
    bi_rank: int
    bi_score: float
    ce_rank: int | None = None
    ce_score: float | None = None
    number: int | None = None

    @property
    def location(self) -> str:
        return f"{self.file}, p. {self.page}" if self.page else self.file

    @property
    def rank_move(self) -> int | None:
        """Places gained by reranking (positive = moved up)."""
        return None if self.ce_rank is None else self.bi_rank - self.ce_rank

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Timings:
    """Milliseconds per stage; None for a stage that did not run."""

    rewrite_ms: float | None = None
    retrieve_ms: float | None = None
    rerank_ms: float | None = None
    evidence_ms: float | None = None
    first_token_ms: float | None = None
    answer_ms: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Ranking:
    """The candidate pool of one question in both orders, and the chunks kept for the LLM."""

    question: str
    candidates: list[Source]
    """All candidates, in bi-encoder order."""
    kept: list[Source]
    """The chunks sent to the LLM, numbered [1]..[k], in the order used (cross-encoder order when reranked)."""
    reranked: bool
    reranker: str | None
    embedder: str
    timings: Timings = field(default_factory=Timings)
    hybrid: bool = False
    """Candidates came from the bi-encoder and BM25 fused; `bi_score` is then the fused (RRF) score."""
    rerank_notice: str | None = None
    """Why the pool is not reranked although reranking was asked for (the cross-encoder could not load), with
    the fix; None otherwise."""

    @property
    def reranked_order(self) -> list[Source]:
        """All candidates in cross-encoder order (bi-encoder order when reranking was off)."""
        if not self.reranked:
            return list(self.candidates)
        return sorted(self.candidates, key=lambda s: s.ce_rank or 0)

    @property
    def best_rerank_score(self) -> float | None:
        scores = [s.ce_score for s in self.candidates if s.ce_score is not None]
        return max(scores) if scores else None

    @property
    def best_bi_score(self) -> float | None:
        """The best bi-encoder cosine of the pool (None with hybrid search, whose first score is a fused rank)."""
        if self.hybrid or not self.candidates:
            return None
        return max(s.bi_score for s in self.candidates)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "reranked": self.reranked,
            "hybrid": self.hybrid,
            "reranker": self.reranker,
            "embedder": self.embedder,
            "rerank_notice": self.rerank_notice,
            "candidates": [s.to_dict() for s in self.candidates],
            "kept": [s.to_dict() for s in self.kept],
            "timings": self.timings.to_dict(),
        }


@dataclass(frozen=True)
class Evidence:
    """A sentence of a sent chunk scored against the question: `text[start:end]` of source [number]."""

    number: int
    start: int
    end: int
    score: float
    text: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnswerSentence:
    """A sentence of the answer (`answer[start:end]`) and the sent chunks behind it.

    `cited`: the numbers the model wrote in it; `attributed`: the chunk found to support it after the answer
    streamed (by the scorer, or because the chunk holds every content word of the sentence). A sentence with no
    supporting chunk is `supported=False`: shown flagged, not cited.
    """

    start: int
    end: int
    text: str
    cited: list[int]
    attributed: list[int]
    score: float | None
    supported: bool

    def to_dict(self) -> dict:
        return asdict(self)


Outcome = Literal["answered", "declined", "unsupported", "not_covered"]


@dataclass
class Answer:
    """An answer being streamed. Iterate `tokens` once; afterwards `text`, `citations` and timings are complete.

    `question` is what the user asked; `standalone_question` what retrieval used (they differ for a rewritten
    follow-up). `outcome` is "not_covered" when the documents scored too low to call the LLM, "declined" when
    the LLM was called and said that the passages do not answer the question, "unsupported" when it answered but
    no sentence of its answer is supported by a sent chunk (`declines.is_unsupported`): the text is kept, and shown
    as not coming from the documents.
    `evidence` holds the scored sentences of each sent chunk (best first), known before the answer streams;
    `sentences` the answer's sentences with their attributed citations, known once it has streamed.
    """

    question: str
    standalone_question: str
    ranking: Ranking
    outcome: Outcome
    tokens: Iterator[str]
    text: str = ""
    citations: list[int] = field(default_factory=list)
    dropped_citations: list[int] = field(default_factory=list)
    cut_off: bool = False
    evidence: dict[int, list[Evidence]] = field(default_factory=dict)
    sentences: list[AnswerSentence] = field(default_factory=list)
    sent: list[Source] = field(default_factory=list)
    """The kept chunks as the LLM read them (setting `context`): whole, cut to a window, or only the chosen
    evidence sentences; a chunk none of whose text was sent is left out."""

    @property
    def sources(self) -> list[Source]:
        return self.ranking.kept

    @property
    def rewritten(self) -> bool:
        return self.standalone_question != self.question

    @property
    def timings(self) -> Timings:
        return self.ranking.timings

    def consume(self) -> str:
        """Read the whole stream (for callers that do not stream) and return the text."""
        for _ in self.tokens:
            pass
        return self.text

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "outcome": self.outcome,
            "answer": self.text,
            "citations": self.citations,
            "dropped_citations": self.dropped_citations,
            "cut_off": self.cut_off,
            "sources": [s.to_dict() for s in self.sources],
            "evidence": {str(n): [e.to_dict() for e in spans] for n, spans in self.evidence.items()},
            "sentences": [s.to_dict() for s in self.sentences],
            "sent": [{"number": s.number, "text": s.text} for s in self.sent],
            "ranking": self.ranking.to_dict(),
        }
