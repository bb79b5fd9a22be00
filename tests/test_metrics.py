"""Ranking metrics on hand-made rankings, each figure worked out by hand in the comment beside it."""

import math

import pytest

from rag.evaluation.metrics import dedupe, mrr_at_k, ndcg_at_k, percentile, recall_at_k

RELEVANT = {"a": 1, "b": 1}  # two relevant documents
RANKED = ["x", "a", "y", "b", "z"]  # relevant at ranks 2 and 4


def test_ndcg_by_hand():
    # DCG@5 = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161; IDCG = 1/log2(2) + 1/log2(3) = 1.63093
    assert ndcg_at_k(RANKED, RELEVANT, 5) == pytest.approx(1.06161 / 1.63093, abs=1e-5)
    # @3: DCG = 0.63093, IDCG the same two ideal gains = 1.63093 -> 0.38685
    assert ndcg_at_k(RANKED, RELEVANT, 3) == pytest.approx(0.38685, abs=1e-5)
    assert ndcg_at_k(["a", "b"], RELEVANT, 10) == 1.0
    assert ndcg_at_k(["x", "y"], RELEVANT, 10) == 0.0


def test_graded_relevance_uses_linear_gain():
    # gains 2 at rank 2 and 1 at rank 1: DCG = 1 + 2/log2(3) = 2.26186; IDCG = 2 + 1/log2(3) = 2.63093
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(2.26186 / 2.63093, abs=1e-5)


def test_recall_by_hand():
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert recall_at_k(RANKED, RELEVANT, 2) == 0.5
    assert recall_at_k(RANKED, RELEVANT, 4) == 1.0
    assert recall_at_k(RANKED, {}, 4) == 0.0


def test_mrr_by_hand():
    assert mrr_at_k(RANKED, RELEVANT, 10) == 0.5  # first relevant at rank 2
    assert mrr_at_k(RANKED, RELEVANT, 1) == 0.0
    assert mrr_at_k(["b"], RELEVANT, 10) == 1.0


def test_chunk_rankings_map_to_documents_by_their_best_chunk():
    assert dedupe(["d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]


def test_percentiles():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 95) == 5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert math.isnan(percentile([], 50))
