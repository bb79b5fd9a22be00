"""Relevance judgements (rag/evaluation/judgements.py) and what they say (rag/evaluation/judgement_scores.py): hand-made
rankings whose metrics are worked out by hand in the comments; stale judgements over a real store; the file and its
formats."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime

import pytest

from rag.documents.library import Library
from rag.errors import CorruptJudgements, JudgementsError
from rag.evaluation.judgement_scores import (QuestionResult, by_change, existing_chunk_ids, judging_pool,
                                             score_question, suggest_threshold, summarize)
from rag.evaluation.judgements import (Judgement, Judgements, from_csv, from_json, load, move_aside, save, to_csv,
                                       to_json, update)
from rag.pipeline import Pipeline
from rag.results import Ranking, Source
from rag.retrieval.store import Store
from tests.conftest import make_settings
from tests.samples import POLICY

LOG3 = math.log2(3)  # discount of rank 2; rank 3's is log2(4) = 2
IDEAL_2 = 1 + 1 / LOG3  # IDCG@3 with two relevant chunks = 1.63093


def source(chunk_id: str, bi_rank: int, ce_rank: int, ce_score: float, file: str = "a.md", page: int | None = None,
           start: int = 0) -> Source:
    return Source(chunk_id=chunk_id, file=file, page=page, start_index=start, text=f"text of {chunk_id}",
                  bi_rank=bi_rank, bi_score=1 - bi_rank / 10, ce_rank=ce_rank, ce_score=ce_score)


def ranking(question: str = "q") -> Ranking:
    """Bi-encoder order a b c d e; cross-encoder order c a e b d (scores .95 .80 .60 .30 .05)."""
    pool = [source("a", 1, 2, 0.80, start=400), source("b", 2, 4, 0.30, file="B.md"), source("c", 3, 1, 0.95, start=0),
            source("d", 4, 5, 0.05, file="c.md", page=2), source("e", 5, 3, 0.60, file="c.md", page=1)]
    return Ranking(question=question, candidates=pool, kept=[], reranked=True, reranker="ce", embedder="bi")


def judged(question: str, relevant: str, not_relevant: str = "") -> Judgements:
    """`question` with the chunks named in `relevant` judged relevant and those in `not_relevant` judged not."""
    judgements = Judgements()
    by_id = {s.chunk_id: s for s in ranking().candidates}
    judgements.judge(question, [by_id[i] for i in relevant + not_relevant], set(relevant))
    return judgements


ALL = {"a", "b", "c", "d", "e"}


# -- metrics, both orders


def test_reranking_that_lifts_both_relevant_chunks_into_the_top_3_is_scored_by_hand():
    question = judged("q", "ce", "ab").questions[0]  # d was never judged: it counts as not relevant
    result = score_question(question, ranking(), ALL)
    assert result.status == "scored" and result.relevant == 2 and result.unjudged == 1
    # bi-encoder a b c: c at rank 3 -> Recall@3 1/2, MRR 1/3, DCG@3 = 1/log2(4) = 0.5
    assert result.bi.as_tuple() == pytest.approx((0.5, 1 / 3, 0.5 / IDEAL_2))
    # cross-encoder c a e: both in the top 3 -> Recall@3 1, MRR 1, DCG@3 = 1 + 1/log2(4) = 1.5
    assert result.ce.as_tuple() == pytest.approx((1.0, 1.0, 1.5 / IDEAL_2))
    assert result.change.as_tuple() == pytest.approx((0.5, 2 / 3, 1 / IDEAL_2))
    assert result.verdict == "helped"


def test_a_relevant_chunk_pushed_down_by_reranking_is_a_question_it_hurt():
    result = score_question(judged("q", "a", "bc").questions[0], ranking(), ALL)
    # bi-encoder: a at rank 1 -> (1, 1, 1); cross-encoder: a at rank 2 -> (1, 1/2, 1/log2(3) = 0.63093)
    assert result.bi.as_tuple() == pytest.approx((1.0, 1.0, 1.0))
    assert result.ce.as_tuple() == pytest.approx((1.0, 0.5, 1 / LOG3))
    assert result.verdict == "hurt"


def test_one_metric_up_and_another_down_is_mixed():
    result = score_question(judged("q", "bc").questions[0], ranking(), ALL)
    # bi a b c: Recall@3 1, MRR 1/2, nDCG@3 (1/log2(3) + 1/2) / IDCG; cross-encoder c a e: 1/2, 1, 1 / IDCG
    assert result.bi.as_tuple() == pytest.approx((1.0, 0.5, (1 / LOG3 + 0.5) / IDEAL_2))
    assert result.ce.as_tuple() == pytest.approx((0.5, 1.0, 1 / IDEAL_2))
    assert result.verdict == "mixed"


def test_mrr_looks_ten_deep_and_recall_and_ndcg_three():
    result = score_question(judged("q", "d").questions[0], ranking(), ALL)
    # d is 4th by the bi-encoder and 5th by the cross-encoder: outside both top 3s, inside both top 10s
    assert result.bi.as_tuple() == pytest.approx((0.0, 1 / 4, 0.0))
    assert result.ce.as_tuple() == pytest.approx((0.0, 1 / 5, 0.0))
    assert result.verdict == "hurt"


def test_the_same_order_both_ways_is_no_change():
    same = Ranking("q", [source("a", 1, 1, 0.9), source("b", 2, 2, 0.1)], [], True, "ce", "bi")
    judgements = Judgements()
    judgements.judge("q", same.candidates, {"b"})
    assert score_question(judgements.questions[0], same, {"a", "b"}).verdict == "no change"


def test_the_summary_averages_the_scored_questions_and_counts_helped_and_hurt():
    judgements = judged("helped", "ce", "ab")
    judgements.merge(judged("hurt", "a", "bc"))
    judgements.merge(judged("judged not covered", "", "abcde"))
    judgements.add_question("not judged yet")
    results = [score_question(q, ranking(q.question) if q.judgements else None, ALL) for q in judgements.questions]
    assert [r.status for r in results] == ["scored", "scored", "none relevant", "not judged"]
    summary = summarize(results)
    assert summary.questions == 2 and (summary.helped, summary.hurt, summary.mixed, summary.unchanged) == (1, 1, 0, 0)
    assert summary.bi.as_tuple() == pytest.approx(((0.5 + 1) / 2, (1 / 3 + 1) / 2, (0.5 / IDEAL_2 + 1) / 2))
    assert summary.ce.as_tuple() == pytest.approx((1.0, (1 + 0.5) / 2, (1.5 / IDEAL_2 + 1 / LOG3) / 2))
    assert [r.question for r in by_change(results, "helped")] == ["helped"]
    assert [r.question for r in by_change(results, "hurt")] == ["hurt"]
    assert summarize(results[2:]).bi is None, "nothing scored: no averages"


def test_a_question_retrieval_found_nothing_for_is_not_scored():
    empty = Ranking("q", [], [], False, None, "bi")
    result = score_question(judged("q", "c", "ab").questions[0], empty, ALL)
    assert result.status == "no candidates" and result.bi is None and judging_pool(empty) == []


def test_the_pool_to_judge_is_both_top_lists_in_document_order_not_in_either_ranking():
    pool = judging_pool(ranking(), depth=2)
    # bi-encoder top 2: a b; cross-encoder top 2: c a -> {a, b, c}, by file (case-blind), then position
    assert [s.chunk_id for s in pool] == ["c", "a", "b"]
    assert [s.chunk_id for s in judging_pool(ranking())] == ["c", "a", "b", "e", "d"]  # c.md p. 1 before p. 2


# -- stale judgements


def test_a_relevant_judgement_of_a_chunk_that_is_gone_makes_the_question_stale_not_wrong():
    question = judged("q", "ce", "ab").questions[0]
    result = score_question(question, ranking(), ALL - {"c"})
    assert result.status == "stale" and result.bi is None
    assert [j.chunk_id for j in result.stale] == ["c"] and result.stale[0].text == "text of c"
    # a judged-not-relevant chunk that is gone changes no score: still scored, the stale judgement listed
    result = score_question(question, ranking(), ALL - {"a"})
    assert result.status == "scored" and [j.chunk_id for j in result.stale] == ["a"]


def test_deleting_or_replacing_a_document_makes_its_judged_chunks_stale_in_a_real_store(tmp_path, bi_encoder,
                                                                                         cross_encoder):
    settings = make_settings(tmp_path)
    store = Store(settings, bi_encoder)
    try:
        library = Library(store, settings)
        library.ingest_bytes("policy.md", POLICY.encode())
        library.ingest_bytes("notes.txt", b"The office plants are watered on Mondays by the facilities team.")
        pipeline = Pipeline(settings, store, cross_encoder)
        ranked = pipeline.retrieve("How long does a refund take?", rerank=True)
        pool = judging_pool(ranked)
        assert {s.chunk_id for s in pool} == {s.chunk_id for s in ranked.candidates}, "a small store: all of it"
        refund = next(s for s in pool if "14 days" in s.text)
        plants = next(s for s in pool if s.file == "notes.txt")
        judgements = Judgements()
        judgements.judge(ranked.question, pool, {refund.chunk_id})
        assert existing_chunk_ids(store, judgements) == {s.chunk_id for s in pool}
        result = score_question(judgements.questions[0], ranked, existing_chunk_ids(store, judgements))
        assert result.status == "scored" and result.best_relevant == refund.ce_score

        library.delete("notes.txt")
        existing = existing_chunk_ids(store, judgements)
        assert plants.chunk_id not in existing and refund.chunk_id in existing
        result = score_question(judgements.questions[0], pipeline.retrieve(ranked.question, rerank=True), existing)
        assert result.status == "scored" and [j.file for j in result.stale] == ["notes.txt"]

        library.ingest_bytes("policy.md", POLICY.replace("14 days", "10 days").encode())  # replaced: new chunk ids
        existing = existing_chunk_ids(store, judgements)
        assert refund.chunk_id not in existing
        result = score_question(judgements.questions[0], pipeline.retrieve(ranked.question, rerank=True), existing)
        assert result.status == "stale" and result.bi is None
    finally:
        store.close()


# -- the not-covered threshold


def answerable(question: str, best_relevant: float, best: float | None = None) -> QuestionResult:
    return QuestionResult(question, "scored", best_relevant=best_relevant, best_score=best or best_relevant)


def test_the_suggested_threshold_is_the_lowest_best_relevant_score_rounded_down_to_the_slider_step():
    results = [answerable("q1", 0.873), answerable("q2", 0.95), answerable("q3", 0.4199, best=0.9),
               QuestionResult("off topic", "none relevant", best_score=0.2),
               QuestionResult("also off topic", "none relevant", best_score=0.5),
               QuestionResult("relevant chunk not retrieved", "scored", best_score=0.7),
               QuestionResult("stale", "stale")]
    suggestion = suggest_threshold(results)
    assert suggestion.value == 0.41  # q3's best relevant chunk, 0.4199, still passes; 0.42 would refuse q3
    assert (suggestion.answerable, suggestion.not_covered, suggestion.stops_not_covered, suggestion.unreached) == \
        (3, 2, 1, 1)
    assert suggestion.reason.startswith("0.41 is the lowest best-relevant cross-encoder score")
    assert "stops 1 of the 2 questions you judged not covered" in suggestion.reason


def test_a_score_on_a_step_is_kept_and_a_tiny_one_turns_the_check_off():
    assert suggest_threshold([answerable("q", 0.87), answerable("r", 0.9)]).value == 0.87
    tiny = suggest_threshold([answerable("q", 0.004)])
    assert tiny.value == 0.0 and "the check is off" in tiny.reason


def test_no_relevant_chunk_means_no_suggestion_yet():
    suggestion = suggest_threshold([QuestionResult("q", "none relevant", best_score=0.3)])
    assert suggestion.value is None and suggestion.not_covered == 1


# -- the file


def test_judgements_survive_a_save_and_load_and_the_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "store" / "judgements.json"
    judgements = judged("How long  does a\nrefund take?", "ce", "ab")
    judgements.add_question("Where do orders ship from?")
    save(judgements, path)
    assert load(path) == judgements
    assert load(path).questions[0].question == "How long does a refund take?", "whitespace tidied"
    assert sorted(p.name for p in path.parent.iterdir()) == ["judgements.json"]
    assert load(tmp_path / "none-yet.json") == Judgements()
    update(path, lambda j: j.remove_question("Where do orders ship from?"))
    assert [q.question for q in load(path).questions] == ["How long does a refund take?"]


@pytest.mark.parametrize("content, fault", [
    (b'{"format": "rag-judgements", "version": 1, "questions": [', "is not valid JSON"),
    (b'["a list"]', 'is not an object with "format": "rag-judgements"'),
    (b'{"format": "rag-judgements", "version": 7, "questions": []}', '"version" is 7'),
    (b'{"format": "rag-judgements", "version": 1, "questions": [{"question": "q", "judgements": [{"chunk_id": "c"}]}]}',
     "questions[0].judgements[0] needs chunk_id"),
    (b"\xff\xfe garbage", "is not valid JSON"),
])
def test_a_corrupt_file_is_reported_with_its_path_and_never_overwritten(tmp_path, content, fault):
    path = tmp_path / "judgements.json"
    path.write_bytes(content)
    with pytest.raises(CorruptJudgements) as raised:
        load(path)
    assert str(path) in raised.value.message and fault in raised.value.message
    assert "move it aside" in raised.value.fix and raised.value.path == path
    with pytest.raises(CorruptJudgements):
        update(path, lambda j: j.add_question("a new question"))
    assert path.read_bytes() == content, "left as it was"
    moved = move_aside(path, now=datetime(2026, 11, 27, 9, 30))
    assert moved.name == "judgements.json.corrupt-20261127-093000" and moved.read_bytes() == content
    assert not path.exists() and load(path) == Judgements()


def test_json_export_imports_back_and_merging_lets_the_import_win(tmp_path):
    exported = judged("q", "ce", "ab")
    assert from_json(to_json(exported), "export.json") == exported
    mine = judged("q", "a", "bc")
    mine.add_question("only mine")
    added, taken = mine.merge(from_json(to_json(exported), "export.json"))
    assert (added, taken) == (0, 4)
    assert mine.find("q").relevant_ids() == {"c", "e"} and mine.find("only mine") is not None


# -- CSV


def test_csv_export_imports_back_to_the_same_judgements():
    judgements = judged("How long does a refund take?", "ce", "ab")
    judgements.questions[0].judgements["d"] = Judgement("d", "c.md", 2, '=HYPERLINK("http://x","y"), "quoted"', False)
    judgements.questions[0].judgements["e"].text = "  # a heading\r\n\nand a snapshot cut after a space "
    judgements.add_question("-not yet judged, starts like a formula")
    text = to_csv(judgements)
    assert text.splitlines()[0] == "question,chunk_id,file,page,relevant,text"
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'=HYPERLINK(\"http://x\",\"y\"), \"quoted\"" in cells, "a cell a spreadsheet would run is defused"
    assert "'-not yet judged, starts like a formula" in cells
    assert from_csv(text.encode(), "export.csv") == judgements


def test_a_csv_of_questions_alone_in_any_common_dialect_imports_the_questions():
    data = "\ufeffQuestion;Notes\nHow long does a refund take?;first\n\n Where do orders  ship from? ;\n".encode()
    imported = from_csv(data, "questions.csv")
    assert [q.question for q in imported.questions] == ["How long does a refund take?", "Where do orders ship from?"]
    assert all(not q.judgements for q in imported.questions)
    one_column = from_csv(b"question\nOne, with a comma?\n", "q.csv")
    assert [q.question for q in one_column.questions] == ["One, with a comma?"]


@pytest.mark.parametrize("content, message", [
    (b"query,answer\nHow long?,14 days\n", "questions.csv has no 'question' column (its columns: 'query', 'answer')"),
    (b"", "questions.csv has no 'question' column (its columns: none)"),
    (b"question,chunk_id,relevant\nq,c1,maybe\n", "questions.csv, line 2: 'relevant' must be yes or no, not 'maybe'"),
    (b"question,chunk_id,relevant,page\nq,c1,yes,two\n", "questions.csv, line 2: 'page' must be a whole number"),
    ("question\nQuel d\u00e9lai ?\n".encode("latin-1"), "questions.csv is not UTF-8 text"),
])
def test_a_csv_that_cannot_be_imported_says_why(content, message):
    with pytest.raises(JudgementsError) as raised:
        from_csv(content, "questions.csv")
    assert raised.value.message.startswith(message)


def test_an_empty_question_is_refused():
    with pytest.raises(JudgementsError, match="empty"):
        Judgements().add_question("  \n ")


def test_the_file_format_is_plain_json_a_person_can_read(tmp_path):
    path = tmp_path / "j.json"
    save(judged("q", "c"), path)
    raw = json.loads(path.read_text())
    assert raw == {"format": "rag-judgements", "version": 1, "questions": [{"question": "q", "judgements": [
        {"chunk_id": "c", "file": "a.md", "page": None, "text": "text of c", "relevant": True}]}]}
