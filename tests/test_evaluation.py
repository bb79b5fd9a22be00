"""`python -m rag eval` on tiny test sets whose answers are worked out by hand, in BEIR layout and as a QA file."""

import json
import math

import pytest

from rag.encoders.quantize import SHOWN
from rag.errors import RagError
from rag.evaluation.retrieval_eval import evaluate, load_beir, load_qa
from rag.pipeline import Pipeline
from rag.retrieval.store import Store
from tests.conftest import make_settings
from tests.fakes import PairScoreCrossEncoder

DOCS = {
    "d1": ("Kettles", "An electric kettle heats a litre for tea in about three minutes."),
    "d2": ("Bicycles", "A bicycle chain should be oiled every few hundred kilometres."),
    "d3": ("Volcanoes", "Magma that reaches the surface of the earth is called lava."),
    "d4": ("Bread", "Sourdough bread rises because of wild yeast and lactic acid bacteria."),
    # Decoys: a forum post that repeats q1 word for word (the bi-encoder's first pick for it, 0.84 against d1's
    # 0.70 cosine), and two documents near q3's subject that the fixed cross-encoder below prefers to d4.
    "d5": ("How long does a kettle take to boil water?", "Asked in the forum; nobody has timed it yet."),
    "d6": ("Bakeries", "Bakers argue all day about which oven is best."),
    "d7": ("Flour", "Flour is milled from wheat grains."),
}
QUERIES = {"q1": "How long does a kettle take to boil water?", "q2": "What is magma called at the surface?",
           "q3": "Why does sourdough rise?"}
QRELS = {"q1": "d1", "q2": "d3", "q3": "d4"}
# Fixed cross-encoder scores (question word, passage words): reranking lifts q1's answer from 2nd to 1st, keeps
# q2's first, and drops q3's from 1st to 3rd. Every other pair scores 0.
SCORES = {("kettle", "three minutes"): 0.9, ("kettle", "nobody"): 0.2, ("magma", "lava"): 0.9,
          ("sourdough", "Bakers"): 0.95, ("sourdough", "Flour is"): 0.85, ("sourdough", "wild yeast"): 0.8}


def by_rank(rank: int) -> dict[str, float]:
    """Every metric of a question whose one relevant document is at `rank` (of 7, all within every cut-off)."""
    ndcg = 1 / math.log2(rank + 1)
    return {"ndcg@10": ndcg, "ndcg@3": ndcg if rank <= 3 else 0.0, "recall@3": float(rank <= 3), "recall@10": 1.0,
            "recall@100": 1.0, "mrr@10": 1 / rank}


@pytest.fixture
def beir_folder(tmp_path):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("\n".join(
        json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in DOCS.items()))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": q}) for i, q in QUERIES.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(
        f"{q}\t{d}\t1" for q, d in QRELS.items()))
    return folder


@pytest.fixture
def factory(bi_encoder, cross_encoder):
    return lambda s: Pipeline(s, Store(s, bi_encoder), cross_encoder)


def test_a_beir_folder_is_scored_per_mode_at_document_level(beir_folder, tmp_path, bi_encoder):
    test = load_beir(beir_folder)
    assert len(test.documents) == 7 and test.qrels["q2"] == {"d3": 1.0}
    fixed = PairScoreCrossEncoder(SCORES)
    report = evaluate(test, make_settings(tmp_path), lambda s: Pipeline(s, Store(s, bi_encoder), fixed),
                      level="doc", candidates=10)
    results = {r.mode: r for r in report.results}
    assert list(results) == ["dense", "rerank", "hybrid", "hybrid-rerank"]
    assert report.documents == 7 and report.questions == 3 and report.reranker == make_settings(tmp_path).reranker_model
    # The relevant document's rank per question, worked out by hand: dense from the cosines noted at DOCS, rerank
    # from SCORES (the pool is all 7 documents, so hybrid candidates rerank to the same order).
    expected = {"dense": {"q1": 2, "q2": 1, "q3": 1}, "rerank": {"q1": 1, "q2": 1, "q3": 3},
                "hybrid-rerank": {"q1": 1, "q2": 1, "q3": 3}}
    for mode, ranks in expected.items():
        for qid, rank in ranks.items():
            assert results[mode].per_question[qid] == pytest.approx(by_rank(rank)), (mode, qid)
    # Means over the three questions: dense nDCG@10 (1/log2(3) + 1 + 1) / 3, MRR (1/2 + 1 + 1) / 3; rerank
    # nDCG@10 (1 + 1 + 1/2) / 3, MRR (1 + 1 + 1/3) / 3. A reranker that did nothing would score as dense.
    assert results["dense"].metrics["ndcg@10"] == pytest.approx(0.87698, abs=1e-5)
    assert results["dense"].metrics["mrr@10"] == pytest.approx(5 / 6)
    assert results["rerank"].metrics["ndcg@10"] == pytest.approx(5 / 6)
    assert results["rerank"].metrics["mrr@10"] == pytest.approx(7 / 9)
    assert results["rerank"].metrics["recall@3"] == results["dense"].metrics["recall@3"] == 1.0
    for result in report.results:
        assert result.stage_ms["retrieve"]["p50"] > 0
        assert ("rerank" in result.stage_ms) == result.mode.endswith("rerank")
    assert "| dense | 0.877 | 0.877 | 1.000 | 1.000 | 1.000 | 0.833 |" in report.table()
    assert "| rerank | 0.833 | 0.833 | 1.000 | 1.000 | 1.000 | 0.778 |" in report.table()


def test_a_run_without_a_rerank_mode_records_no_cross_encoder(beir_folder, tmp_path, factory):
    report = evaluate(load_beir(beir_folder), make_settings(tmp_path), factory, modes=["dense", "hybrid"],
                      candidates=10)
    assert report.reranker is None and report.to_dict()["reranker"] is None
    assert "/" not in report.precision, "only the bi-encoder ran"


def test_a_qa_file_judges_chunks_by_the_answers_they_contain(tmp_path, factory):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, (title, text) in DOCS.items():
        (docs / f"{i}.txt").write_text(f"{title}. {text}")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "What is magma called at the surface?", "answers": ["LAVA"]}) + "\n"
                  + json.dumps({"question": "What does a chain need?", "answer": "oiled   every"}) + "\n"
                  + json.dumps({"question": "Who won the 1954 world cup?", "answers": ["West Germany"]}) + "\n")
    report = evaluate(load_qa(qa, docs), make_settings(tmp_path), factory, modes=["dense", "rerank"], candidates=10)
    assert report.level == "chunk"
    # The encoders ran in the number format the settings resolved to, and the report says which.
    assert report.precision.count("/") == 1
    assert all(p in ("float32", "bfloat16", *SHOWN.values()) for p in report.precision.split(" / "))
    per_question = report.results[0].per_question
    assert per_question["1"]["mrr@10"] == 1.0 and per_question["2"]["mrr@10"] == 1.0
    assert per_question["3"]["recall@10"] == 0.0  # no chunk holds that answer
    assert report.results[0].metrics["mrr@10"] == pytest.approx(2 / 3)


def test_bad_evaluation_input_is_a_clear_error(tmp_path, factory):
    with pytest.raises(RagError, match="not a BEIR folder"):
        load_beir(tmp_path)
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "no answers here"}\n')
    with pytest.raises(RagError, match="needs a question and at least one answer"):
        load_qa(qa, tmp_path)
