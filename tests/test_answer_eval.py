"""Answers end to end: `python -m rag eval --answers` on a tiny set, with the real small LLM over Ollama's API,
and the answer path's evidence, attributed citations and declines with scripted replies where a test needs them."""

import json

import pytest

from rag.errors import RagError
from rag.evaluation.answer_eval import evaluate_answers, judge, load_answer_set, summarise
from rag.pipeline import Pipeline
from rag.retrieval.store import Store
from tests.conftest import cli_env, make_settings, run_cli, threshold_between
from tests.fakes import ScriptedChat

DOCS = {
    "kettles.txt": "Kettles. A kettle boils a litre of water in about three minutes. Its base holds the heating "
                   "element. The lid opens with a button.",
    "volcanoes.txt": "Volcanoes. Magma that reaches the surface of the earth is called lava. Ash clouds can ground "
                     "aircraft for days.",
    "bread.txt": "Bread. Sourdough bread rises because of wild yeast. It is baked at a high heat for forty minutes.",
}
QA = [("What is magma called when it reaches the surface?", ["lava"]),
      ("How long does a kettle take to boil a litre of water?", ["three minutes", "about three minutes"])]
OFF = ["Who painted the Mona Lisa?", "Which author wrote the novel War and Peace?"]


@pytest.fixture
def tiny(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps({"question": q, "answers": a}) for q, a in QA))
    off = tmp_path / "off-corpus.jsonl"
    off.write_text("\n".join(json.dumps({"question": q}) for q in OFF))
    return qa, docs, off


MAGMA = QA[0][0]


def scripted_answer(tmp_path, store, cross_encoder, reply: str, question: str = MAGMA, **settings):
    """`question` asked over DOCS, the LLM replying `reply`: (the consumed answer, the chat model)."""
    chat = ScriptedChat(reply)
    pipeline = Pipeline(make_settings(tmp_path, **settings), store, cross_encoder, chat_model=chat)
    for name, text in DOCS.items():
        pipeline.library.ingest_bytes(name, text.encode())
    answer = pipeline.ask(question)
    answer.consume()
    return answer, chat


@pytest.fixture
def factory(bi_encoder, cross_encoder):
    return lambda s: Pipeline(s, Store(s, bi_encoder), cross_encoder)


def test_answers_are_measured_per_mode_with_the_real_llm(tiny, tmp_path, ollama_url, factory, store, cross_encoder):
    qa, docs, off = tiny
    probe = Pipeline(make_settings(tmp_path), store, cross_encoder)
    probe.library.ingest_many((name, text.encode()) for name, text in DOCS.items())
    settings = make_settings(tmp_path, ollama_url, min_rerank_score=threshold_between(probe, OFF, [q for q, _ in QA]))
    report = evaluate_answers(load_answer_set(qa, docs, [off]), settings, factory, modes=["dense", "rerank"])
    assert [r["mode"] for r in report.results] == ["dense", "rerank"]
    for result in report.results:
        a = result["answers"]
        assert a["gold_sent"] == 1.0, "each gold answer is in a sent chunk of these documents"
        assert a["evidence_top_gold"] == 1.0, "and the top evidence sentence holds it"
        assert 0 <= a["contains_gold"] <= 1 and 0 <= a["f1"] <= 1 and set(a["declined"]) == {"off-corpus"}
        assert a["first_token_ms"]["p50"] > 0 and a["answer_ms"]["p50"] >= a["first_token_ms"]["p50"]
        records = result["per_question"]["answerable"]
        assert [r["question"] for r in records] == [q for q, _ in QA]
        answered = [r for r in records if not r["declined"]]
        assert all(r["cited"] for r in answered if r["unsupported_sentences"] < len(r["sentences"])), \
            "an answer with a supported sentence shows a citation"
    rerank = report.results[1]["answers"]
    assert rerank["declined"]["off-corpus"] == 1.0, "a gate between the two kinds of question stops both off-corpus ones"
    assert "| rerank |" in report.table()


def test_a_decline_is_its_own_outcome_and_counts_as_declined(tmp_path, store, cross_encoder):
    answer, _ = scripted_answer(tmp_path, store, cross_encoder, "The documents do not contain the answer.")
    assert answer.outcome == "declined" and answer.sentences == []
    record = judge(answer, ["lava"])
    assert record["declined"] and not record["contains_gold"] and record["gold_sent"]


def test_an_answer_no_sent_chunk_supports_is_its_own_outcome_and_counts_as_declined(tmp_path, store, cross_encoder):
    # An off-corpus question that the gate lets through (here: no gate), answered from the model's memory.
    answer, _ = scripted_answer(tmp_path, store, cross_encoder, "Leonardo da Vinci painted the Mona Lisa. He worked "
                                "on it in Florence for many years.", OFF[0], min_rerank_score=0.0)
    assert answer.text.startswith("Leonardo"), "the text is kept"
    assert answer.outcome == "unsupported" and len(answer.sentences) == 2
    assert not any(s.supported or s.attributed for s in answer.sentences)
    record = judge(answer, None)
    assert record["declined"] and record["citations"] == []
    by = summarise([], {"off-corpus": [record]})["declined_by"]
    assert by["off-corpus"] == {"not_covered": 0.0, "declined": 0.0, "unsupported": 1.0}


def test_an_answer_with_one_supported_sentence_is_answered(tmp_path, store, cross_encoder):
    answer, _ = scripted_answer(tmp_path, store, cross_encoder,
                                "Penguins often nest in the hot Sahara desert. Magma at the surface is called lava.")
    assert answer.outcome == "answered" and [s.supported for s in answer.sentences] == [False, True]
    assert judge(answer, ["lava"])["contains_gold"]


def test_every_answer_sentence_gets_a_citation_or_a_flag(tmp_path, store, cross_encoder):
    answer, _ = scripted_answer(tmp_path, store, cross_encoder, "Magma at the surface is called lava. Penguins often "
                                "nest in the hot Sahara desert.", context="chunks")
    lava, penguins = answer.sentences
    source = {s.number: s for s in answer.sources}
    assert lava.cited == [] and lava.supported and "lava" in source[lava.attributed[0]].text
    assert not penguins.supported and penguins.attributed == []
    top = answer.evidence[lava.attributed[0]][0]
    assert "called lava" in top.text, "the best evidence sentence of the chunk is the one that answers"


def test_only_the_best_evidence_sentence_is_sent_by_default(tmp_path, store, cross_encoder):
    answer, chat = scripted_answer(tmp_path, store, cross_encoder, "Lava [1].")
    request = chat.sent[0][-1].content
    assert "Magma that reaches the surface of the earth is called lava." in request
    assert "Ash clouds" not in request and "kettle" not in request.lower()
    assert len(answer.sources) == 3, "the kept chunks are still all shown as sources"


def test_the_cli_writes_the_answer_report_as_json(tiny, tmp_path, ollama_url):
    qa, docs, off = tiny
    out = tmp_path / "answers.json"
    settings = make_settings(tmp_path, ollama_url)
    result = run_cli("eval", "--answers", str(qa), "--docs", str(docs), "--unanswerable", str(off), "--modes",
                     "rerank", "--limit", "1", "--json", str(out), env=cli_env(settings))
    assert result.returncode == 0, result.stderr
    assert "| rerank |" in result.stdout and "declined: off-corpus" in result.stdout
    assert "rerank: declined by the gate / the model / as unsupported: answerable " in result.stdout
    data = json.loads(out.read_text())
    answers = data["results"][0]["answers"]
    assert set(answers) >= {"contains_gold", "f1", "gold_sent", "cited", "citations_correct", "wrongly_declined",
                            "declined", "first_token_ms", "answer_ms"}
    assert set(answers["declined_by"]) == {"answerable", "off-corpus"}
    assert len(data["results"][0]["per_question"]["answerable"]) == 1


def test_an_answer_file_without_answers_is_refused(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text(json.dumps({"question": "Why?"}))
    (tmp_path / "docs").mkdir()
    with pytest.raises(RagError, match="needs a question and at least one answer"):
        load_answer_set(bad, tmp_path / "docs")
