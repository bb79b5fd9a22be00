"""`python -m rag eval` on tiny test sets whose answers are obvious, in BEIR layout and as a QA file."""

import json

import pytest

from rag.errors import RagError
from rag.evaluation import evaluate, load_beir, load_qa
from rag.pipeline import Pipeline
from rag.store import Store
from tests.conftest import make_settings

DOCS = {
    "d1": ("Kettles", "A kettle boils water for tea in about three minutes."),
    "d2": ("Bicycles", "A bicycle chain should be oiled every few hundred kilometres."),
    "d3": ("Volcanoes", "Magma that reaches the surface of the earth is called lava."),
    "d4": ("Bread", "Sourdough bread rises because of wild yeast and lactic acid bacteria."),
}
QUERIES = {"q1": "How long does a kettle take to boil water?", "q2": "What is magma called at the surface?",
           "q3": "Why does sourdough rise?"}
QRELS = {"q1": "d1", "q2": "d3", "q3": "d4"}


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


def test_a_beir_folder_is_scored_per_mode_at_document_level(beir_folder, tmp_path, factory):
    test = load_beir(beir_folder)
    assert len(test.documents) == 4 and test.qrels["q2"] == {"d3": 1.0}
    report = evaluate(test, make_settings(tmp_path), factory, level="doc", candidates=10)
    assert [r.mode for r in report.results] == ["dense", "rerank", "hybrid", "hybrid-rerank"]
    assert report.documents == 4 and report.questions == 3
    for result in report.results:
        # Every question's single relevant document is obvious: found first, so every metric is 1.
        assert result.metrics == {"ndcg@10": 1.0, "ndcg@3": 1.0, "recall@3": 1.0, "recall@10": 1.0,
                                  "recall@100": 1.0, "mrr@10": 1.0}
        assert result.stage_ms["retrieve"]["p50"] > 0
    assert "rerank" in report.results[1].stage_ms and "rerank" not in report.results[0].stage_ms
    assert "| dense | 1.000 |" in report.table()
    # The encoders ran in the number format the settings resolved to, and the report says which.
    assert report.precision.count("/") == 1
    assert all(p in ("float32", "bfloat16") or p.startswith("int8") for p in report.precision.split(" / "))


def test_a_qa_file_judges_chunks_by_the_answers_they_contain(tmp_path, factory):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, (title, text) in DOCS.items():
        (docs / f"{i}.txt").write_text(f"{title}. {text}")
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"question": "What is magma called at the surface?", "answers": ["LAVA"]}) + "\n"
                  + json.dumps({"question": "What does a chain need?", "answer": "oiled   every"}) + "\n"
                  + json.dumps({"question": "Who won the 1954 world cup?", "answers": ["West Germany"]}) + "\n")
    report = evaluate(load_qa(qa, docs), make_settings(tmp_path), factory, modes=["dense"], candidates=10)
    assert report.level == "chunk"
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
