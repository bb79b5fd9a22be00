"""The same candidate pool answered two ways: from the bi-encoder's top k and from the cross-encoder's top k.

The Compare page (and anyone else) ranks a question once with `Pipeline.retrieve(rerank=True)`, then builds one
view of the pool per side with `bi_encoder_side` / `cross_encoder_side`, and answers each with
`Pipeline.answer_from`.
"""

from __future__ import annotations

from dataclasses import replace

from .results import Answer, Ranking, Timings


def _fresh_timings(ranking: Ranking) -> Timings:
    """Retrieval timings carried over; the answer timings left for this side's own answer to fill in."""
    t = ranking.timings
    return Timings(rewrite_ms=t.rewrite_ms, retrieve_ms=t.retrieve_ms, rerank_ms=t.rerank_ms)


def bi_encoder_side(ranking: Ranking, keep: int | None = None) -> Ranking:
    """The pool with the bi-encoder's best `keep` (default: as many as the ranking kept) numbered [1]..[keep].

    Cross-encoder ranks and scores stay on the candidates (for display); the kept chunks ignore them.
    """
    keep = keep or len(ranking.kept)
    pool = [replace(s, number=s.bi_rank if s.bi_rank <= keep else None) for s in ranking.candidates]
    kept = sorted((s for s in pool if s.number is not None), key=lambda s: s.bi_rank)
    return Ranking(question=ranking.question, candidates=pool, kept=kept, reranked=False, reranker=None,
                   embedder=ranking.embedder, timings=_fresh_timings(ranking))


def cross_encoder_side(ranking: Ranking) -> Ranking:
    """The ranking as reranked, with timings of its own (so that two answers do not overwrite each other's)."""
    return replace(ranking, timings=_fresh_timings(ranking))
