"""Retrieval and reranking: both orders, both scores, and the bi-encoder order when reranking is off."""

import pytest

from rag.errors import NoDocuments
from rag.pipeline import Pipeline
from tests.fakes import FixedScoreCrossEncoder
from tests.samples import POLICY


@pytest.fixture
def stocked(pipeline):
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    pipeline.library.ingest_bytes("moon.txt", b"The moon is made of rock and dust. It has no air and no weather.")
    return pipeline


def test_reranking_orders_by_cross_encoder_score_and_keeps_both_scores(stocked, settings):
    # Fixed scores that invert the bi-encoder's preference, so the new order is known in advance.
    fake = FixedScoreCrossEncoder({"moon": 0.9, "Gift cards": 0.8}, otherwise=0.1)
    pipeline = Pipeline(settings, stocked.store, fake)
    ranking = pipeline.retrieve("How long does a refund take?", rerank=True, keep=2)
    assert ranking.reranked
    by_ce = ranking.reranked_order
    assert [s.ce_rank for s in by_ce] == list(range(1, len(by_ce) + 1))
    assert [s.ce_score for s in by_ce] == sorted((s.ce_score for s in by_ce), reverse=True)
    assert "moon" in by_ce[0].text and "Gift cards" in by_ce[1].text
    assert [s.number for s in ranking.kept] == [1, 2] and ranking.kept == by_ce[:2]
    # Every candidate still carries its bi-encoder rank and score, in the bi-encoder's order.
    assert [s.bi_rank for s in ranking.candidates] == list(range(1, len(ranking.candidates) + 1))
    assert [s.bi_score for s in ranking.candidates] == sorted((s.bi_score for s in ranking.candidates), reverse=True)
    assert by_ce[0].rank_move == by_ce[0].bi_rank - 1 > 0


def test_the_real_cross_encoder_puts_the_answering_chunk_first(stocked):
    ranking = stocked.retrieve("How long does a refund take to process?", rerank=True)
    best = ranking.kept[0]
    assert "14 days" in best.text and best.number == 1
    assert 0.0 <= best.ce_score <= 1.0 and best.ce_score == ranking.best_rerank_score
    assert ranking.timings.rerank_ms is not None and ranking.reranker == stocked.settings.reranker_model


def test_without_reranking_the_kept_chunks_are_the_bi_encoder_top(stocked, settings):
    fake = FixedScoreCrossEncoder({}, otherwise=0.5)
    pipeline = Pipeline(settings, stocked.store, fake)
    ranking = pipeline.retrieve("Where do orders ship from?", rerank=False, keep=3)
    assert not ranking.reranked and fake.calls == []
    assert ranking.kept == ranking.candidates[:3]
    assert all(s.ce_score is None and s.ce_rank is None for s in ranking.candidates)
    assert [s.number for s in ranking.kept] == [1, 2, 3]


def test_candidates_and_keep_bound_the_pool(stocked):
    ranking = stocked.retrieve("warranty", rerank=True, candidates=2, keep=1)
    assert len(ranking.candidates) == 2 and len(ranking.kept) == 1


def test_an_empty_store_says_to_add_documents(pipeline):
    with pytest.raises(NoDocuments, match="no documents"):
        pipeline.retrieve("anything")


def test_hybrid_search_puts_an_exact_keyword_match_first(pipeline):
    for i in range(30):
        pipeline.library.ingest_bytes(f"note{i}.txt", f"Meeting note {i}: the team discussed the budget.".encode())
    pipeline.library.ingest_bytes("codes.txt", b"Error code XK-4471 means the disk is full.")
    question = "XK-4471"
    dense = pipeline.retrieve(question, rerank=False, hybrid=False, candidates=5)
    hybrid = pipeline.retrieve(question, rerank=False, hybrid=True, candidates=5)
    assert hybrid.hybrid and hybrid.candidates[0].file == "codes.txt"
    assert [s.bi_rank for s in hybrid.candidates] == list(range(1, len(hybrid.candidates) + 1))
    # the fused score is a reciprocal-rank sum: at most 2 / (60 + 1)
    assert 0 < hybrid.candidates[0].bi_score <= 2 / 61 + 1e-6
    assert not dense.hybrid and 0 < dense.candidates[0].bi_score <= 1


def test_bm25_index_follows_ingest_and_delete(pipeline):
    pipeline.library.ingest_bytes("a.txt", b"zebra crossings are striped")
    assert [d.metadata["source"] for d in pipeline.keyword_index.search(pipeline.store, "zebra", 5)] == ["a.txt"]
    pipeline.library.delete("a.txt")
    pipeline.library.ingest_bytes("b.txt", b"a zebra at the zoo")
    assert [d.metadata["source"] for d in pipeline.keyword_index.search(pipeline.store, "zebra", 5)] == ["b.txt"]
