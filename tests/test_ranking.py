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


def test_remembered_scores_rank_overlapping_pools_without_scoring_a_pair_twice(stocked, settings, cross_encoder):
    class Counting(type(cross_encoder)):
        """The real cross-encoder, counting the pairs it is asked to score."""

        def __init__(self) -> None:
            self.__dict__.update(cross_encoder.__dict__)
            self.pairs = 0

        def score(self, text_pairs):
            self.pairs += len(text_pairs)
            return super().score(text_pairs)

    counting = Counting()
    pipeline = Pipeline(settings, stocked.store, lambda: counting)
    plain = pipeline.retrieve("How long does a refund take?", rerank=True, candidates=5)
    remembered = pipeline.remember_scores()
    dense = pipeline.retrieve("How long does a refund take?", rerank=True, candidates=5)
    hybrid = pipeline.retrieve("How long does a refund take?", rerank=True, candidates=5, hybrid=True)
    shared = {s.chunk_id for s in dense.candidates} & {s.chunk_id for s in hybrid.candidates}
    assert shared, "the dense and hybrid pools should overlap for this test to mean anything"
    # The first (plain) ranking scored its pool; the remembering one scored the dense pool once and then only the
    # hybrid chunks not already scored.
    assert counting.pairs == len(plain.candidates) + len(dense.candidates) + len(hybrid.candidates) - len(shared)
    assert [(s.chunk_id, s.ce_score) for s in dense.reranked_order] == \
        [(s.chunk_id, s.ce_score) for s in plain.reranked_order]
    remembered.forget()
    pipeline.retrieve("How long does a refund take?", rerank=True, candidates=5)
    assert counting.pairs == len(plain.candidates) * 2 + len(dense.candidates) + len(hybrid.candidates) - len(shared)


def test_bfloat16_encoders_rank_like_float32_ones(stocked, settings):
    from rag.retrieval.embeddings import BiEncoder
    from rag.retrieval.rerank import SentenceTransformerCrossEncoder

    chunks = [d.page_content for d in stocked.store.get_chunks()]
    question = "How long does a refund take to process?"
    scores = {}
    for precision in ("float32", "bfloat16"):
        embedder = BiEncoder(settings.embedding_model, precision=precision)
        vectors = embedder.embed_documents([question, *chunks])
        assert all(abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)  # unit length in either precision
        cross = SentenceTransformerCrossEncoder(settings.reranker_model, precision=precision)
        scores[precision] = (
            [sum(a * b for a, b in zip(vectors[0], v)) for v in vectors[1:]],
            cross.score([(question, c) for c in chunks]),
        )
    for kind in (0, 1):  # bi-encoder similarities, then cross-encoder scores
        full, half = scores["float32"][kind], scores["bfloat16"][kind]
        assert max(range(len(chunks)), key=full.__getitem__) == max(range(len(chunks)), key=half.__getitem__)
        assert max(abs(a - b) for a, b in zip(full, half)) < 0.05


def test_pairs_are_batched_by_length_so_that_padding_wastes_little():
    from rag.encoders.batches import length_buckets

    lengths = [100, 250, 240, 90, 245, 120, 256]
    batches = length_buckets(lengths, max_batch=32, max_padding=0.1)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every pair once
    assert batches == [[6, 1, 4, 2], [5, 0], [3]]  # worked by hand: 90 with 120 and 100 would pad 50 of 360
    for batch in batches:
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded - sum(lengths[i] for i in batch) <= 0.1 * padded
    assert [len(b) for b in length_buckets([7] * 70, max_batch=32)] == [32, 32, 6]


def test_batching_by_length_does_not_change_scores(cross_encoder):
    long = "Refunds are processed within 14 days of receiving the returned item in its original packaging. " * 3
    pairs = [("How long does a refund take?", text) for text in [long, "Refunds take 14 days.", long[:120], "No."]]
    one_by_one = [cross_encoder.score([p])[0] for p in pairs]
    assert cross_encoder.score(pairs) == pytest.approx(one_by_one, abs=0.02)
