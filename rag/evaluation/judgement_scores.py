"""What the user's judgements say: retrieval metrics per question and overall with and without the cross-encoder,
which questions reranking helped or hurt, and a not-covered threshold suggested from the same judgements.

One `Ranking` per question (`Pipeline.retrieve(question, rerank=True)`) holds both orders of one candidate pool:
the bi-encoder's (`candidates`) and the cross-encoder's (`reranked_order`). Each order is scored over chunk ids
against the chunks judged relevant (`rag.evaluation.metrics`); a chunk nobody judged counts as not relevant. A question
with a relevant judgement whose chunk no longer exists is *stale* and is not scored: the chunk that replaced it is
unjudged, so scoring it would count a right answer as a miss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..results import Ranking, Source
from ..retrieval.store import Store
from .judgements import JudgedQuestion, Judgement, Judgements
from .metrics import mrr_at_k, ndcg_at_k, recall_at_k

RECALL_K = 3
NDCG_K = 3
MRR_K = 10
POOL_DEPTH = MRR_K  # judge each order's top 10, the deepest either order's metrics look
THRESHOLD_STEP = 0.01  # the sidebar slider's step
_SAME = 1e-9

Status = Literal["scored", "not judged", "stale", "no candidates", "none relevant"]
Verdict = Literal["helped", "hurt", "mixed", "no change"]


def judging_pool(ranking: Ranking, depth: int = POOL_DEPTH) -> list[Source]:
    """The chunks to judge for a question: the bi-encoder's top `depth` and the cross-encoder's top `depth` together
    (so that neither side's metrics rest on chunks nobody judged), in document order: by file, page and position,
    which favours neither ranking."""
    chosen = {s.chunk_id: s for s in ranking.candidates[:depth]}
    chosen.update((s.chunk_id, s) for s in ranking.reranked_order[:depth])
    return sorted(chosen.values(), key=lambda s: (s.file.casefold(), s.file, s.page or 0, s.start_index, s.chunk_id))


def existing_chunk_ids(store: Store, judgements: Judgements) -> set[str]:
    """The judged chunk ids that are still in the store (the others are stale)."""
    judged = judgements.chunk_ids()
    if not judged:
        return set()
    files = judgements.files()
    # Judgements imported from a CSV may lack the file name; then look at every chunk id, else at those files only.
    where = None if "" in files else {"source": {"$in": sorted(files)}}
    return judged & set(store.chunk_ids(where))


@dataclass(frozen=True)
class Scores:
    """Recall@3, MRR@10 and nDCG@3 of one order (or their mean over questions, or a difference)."""

    recall: float
    mrr: float
    ndcg: float

    def minus(self, other: "Scores") -> "Scores":
        return Scores(self.recall - other.recall, self.mrr - other.mrr, self.ndcg - other.ndcg)

    def as_tuple(self) -> tuple[float, float, float]:
        return self.recall, self.mrr, self.ndcg


METRIC_NAMES = (f"Recall@{RECALL_K}", f"MRR@{MRR_K}", f"nDCG@{NDCG_K}")


def score_order(order: Sequence[str], relevant: set[str]) -> Scores:
    """One order of chunk ids, best first, against the ids judged relevant (each with gain 1)."""
    gains = dict.fromkeys(relevant, 1.0)
    return Scores(recall_at_k(order, gains, RECALL_K), mrr_at_k(order, gains, MRR_K), ndcg_at_k(order, gains, NDCG_K))


@dataclass(frozen=True)
class ScorePoint:
    """A judged chunk among a question's candidates, with its cross-encoder score (for the threshold chart)."""

    question: str
    location: str
    ce_score: float
    relevant: bool


@dataclass(frozen=True)
class QuestionResult:
    """One question: its status, both orders' scores when it could be scored, and what the threshold needs.

    Statuses: "scored"; "not judged" (nothing judged yet); "stale" (a chunk judged relevant no longer exists);
    "no candidates" (retrieval found nothing); "none relevant" (chunks judged, none relevant: not scored, but a
    question the documents do not cover, which the threshold should stop).
    """

    question: str
    status: Status
    bi: Scores | None = None
    ce: Scores | None = None
    relevant: int = 0
    """Chunks judged relevant that still exist."""
    stale: tuple[Judgement, ...] = ()
    unjudged: int = 0
    """Chunks of the judging pool that nobody judged (they count as not relevant)."""
    best_relevant: float | None = None
    """The best cross-encoder score of a chunk judged relevant, among the candidates (None if none is there)."""
    best_score: float | None = None
    """The best cross-encoder score of all the candidates: what the not-covered threshold is compared with."""
    points: tuple[ScorePoint, ...] = ()

    @property
    def change(self) -> Scores | None:
        """What reranking changed: cross-encoder minus bi-encoder."""
        return self.ce.minus(self.bi) if self.ce and self.bi else None

    @property
    def verdict(self) -> Verdict | None:
        """helped: some metric rose and none fell; hurt: some fell and none rose; mixed: both; no change."""
        if self.change is None:
            return None
        rose = any(d > _SAME for d in self.change.as_tuple())
        fell = any(d < -_SAME for d in self.change.as_tuple())
        return "mixed" if rose and fell else "helped" if rose else "hurt" if fell else "no change"


def score_question(question: JudgedQuestion, ranking: Ranking | None, existing: set[str]) -> QuestionResult:
    """Score one question's ranking (both orders) against its judgements; `existing` as from `existing_chunk_ids`."""
    stale = tuple(j for j in question.judgements.values() if j.chunk_id not in existing)
    relevant = {i for i in question.relevant_ids() if i in existing}
    base = dict(question=question.question, relevant=len(relevant), stale=stale)
    if not question.judgements or ranking is None:
        return QuestionResult(status="not judged", **base)
    if any(j.relevant for j in stale):
        return QuestionResult(status="stale", **base)
    if not ranking.candidates:
        return QuestionResult(status="no candidates", **base)
    points = tuple(ScorePoint(question.question, s.location, s.ce_score, question.judgements[s.chunk_id].relevant)
                   for s in ranking.candidates if s.chunk_id in question.judgements and s.ce_score is not None)
    relevant_scores = [p.ce_score for p in points if p.relevant]
    base.update(best_relevant=max(relevant_scores, default=None), best_score=ranking.best_rerank_score, points=points,
                unjudged=sum(s.chunk_id not in question.judgements for s in judging_pool(ranking)))
    if not relevant:
        return QuestionResult(status="none relevant", **base)
    bi = score_order([s.chunk_id for s in ranking.candidates], relevant)
    ce = score_order([s.chunk_id for s in ranking.reranked_order], relevant)
    return QuestionResult(status="scored", bi=bi, ce=ce, **base)


@dataclass(frozen=True)
class Summary:
    """The mean of each metric over the scored questions, per order, and how many questions reranking helped or hurt."""

    questions: int
    bi: Scores | None
    ce: Scores | None
    helped: int = 0
    hurt: int = 0
    mixed: int = 0
    unchanged: int = 0

    @property
    def change(self) -> Scores | None:
        return self.ce.minus(self.bi) if self.ce and self.bi else None


def summarize(results: Sequence[QuestionResult]) -> Summary:
    scored = [r for r in results if r.status == "scored"]
    if not scored:
        return Summary(0, None, None)

    def mean(side: str) -> Scores:
        columns = zip(*(getattr(r, side).as_tuple() for r in scored))
        return Scores(*(sum(c) / len(scored) for c in columns))

    verdicts = [r.verdict for r in scored]
    return Summary(len(scored), mean("bi"), mean("ce"), helped=verdicts.count("helped"), hurt=verdicts.count("hurt"),
                   mixed=verdicts.count("mixed"), unchanged=verdicts.count("no change"))


def by_change(results: Sequence[QuestionResult], verdict: Verdict) -> list[QuestionResult]:
    """The scored questions with this verdict, the largest change (nDCG, then MRR, then recall) first."""
    chosen = [r for r in results if r.status == "scored" and r.verdict == verdict]
    return sorted(chosen, key=lambda r: tuple(abs(d) for d in reversed(r.change.as_tuple())), reverse=True)


@dataclass(frozen=True)
class ThresholdSuggestion:
    value: float | None
    """None when no judged question has a relevant chunk among its candidates."""
    reason: str
    answerable: int
    """Questions with a chunk judged relevant among the candidates: the suggestion lets each of them through."""
    not_covered: int
    """Questions whose judged chunks are all not relevant."""
    stops_not_covered: int
    """How many of those the suggested threshold stops."""
    unreached: int
    """Scored questions none of whose relevant chunks is among the candidates (not counted)."""


def suggest_threshold(results: Sequence[QuestionResult], step: float = THRESHOLD_STEP) -> ThresholdSuggestion:
    """The highest threshold, on the slider's steps, that lets every question judged answerable reach the LLM.

    Rule: take each scored question's best cross-encoder score among the chunks judged relevant; the lowest of them,
    rounded down to `step`, is the suggestion. The app compares a question's best candidate score with the threshold
    (below it, the LLM is not asked), and a question's best candidate scores at least its best relevant chunk, so no
    question judged answerable is refused. This rule is chosen over a balanced-accuracy split because it needs no
    questions judged "not covered" (few users write those) and never trades a refused answerable question for
    one stopped correctly; the questions whose chunks were all judged not relevant are reported instead, with how
    many of them the suggestion would stop.
    """
    answerable = [r for r in results if r.status == "scored" and r.best_relevant is not None]
    unreached = sum(r.status == "scored" and r.best_relevant is None for r in results)
    uncovered = [r for r in results if r.status == "none relevant" and r.best_score is not None]
    if not answerable:
        return ThresholdSuggestion(None, "Tick at least one chunk that answers a question to get a suggestion.",
                                   0, len(uncovered), 0, unreached)
    lowest = min(answerable, key=lambda r: r.best_relevant)
    value = round(math.floor(lowest.best_relevant / step) * step, 6)
    if value > lowest.best_relevant:  # floating point put it a hair above
        value = round(value - step, 6)
    value = max(value, 0.0)
    stops = sum(r.best_score < value for r in uncovered)
    reason = (f"{value:.2f} is the lowest best-relevant cross-encoder score among your {len(answerable)} answerable "
              f"questions ({lowest.best_relevant:.4f}), rounded down: the highest threshold that still lets each of "
              "them reach the LLM.")
    if value == 0:
        reason += " At 0 the check is off."
    if uncovered:
        reason += f" It stops {stops} of the {len(uncovered)} questions you judged not covered."
    return ThresholdSuggestion(value, reason, len(answerable), len(uncovered), stops, unreached)
