"""The Evaluate page with AppTest: real encoders and a temporary Chroma; no LLM is needed (port 9 answers nothing).

The expected pool and metrics come from the same pipeline run outside the app before it opens the store, so each
assertion checks what the page shows against rag's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.answers.declines import rerank_gate
from rag.evaluation import judgements as saved
from rag.evaluation.judgement_scores import judging_pool, score_order
from rag.evaluation.judgements import JudgedQuestion, Judgements
from rag.pipeline import Pipeline
from rag.results import Ranking
from rag.retrieval.store import Store
from tests.conftest import DATA, make_settings
from tests.samples import POLICY
from tests.test_app import REFUND, start, stock, texts, use_settings
from ui.text import escape

GUIDE = "retrieval-and-reranking.md"
NOTES = b"The office plants are watered on Mondays by the facilities team. Refunds are not handled here."


@dataclass
class Stocked:
    folder: Path
    ranking: Ranking
    """REFUND ranked by the pipeline outside the app, with the settings the app will use."""

    @property
    def refund_chunk(self) -> str:
        """The policy's refund chunk (the guide's worked example says 14 days too, of a made-up shop)."""
        return next(s.chunk_id for s in self.ranking.candidates if "14 days" in s.text and s.file == "policy.md")


@pytest.fixture(scope="module")
def stocked_folder(tmp_path_factory, bi_encoder, cross_encoder) -> Stocked:
    folder = tmp_path_factory.mktemp("evaluate")
    settings = make_settings(folder)
    stock(settings, bi_encoder, {"policy.md": POLICY.encode(), GUIDE: (DATA / GUIDE).read_bytes()})
    store = Store(settings, bi_encoder)
    try:
        ranking = Pipeline(settings, store, cross_encoder).retrieve(REFUND, rerank=True)
    finally:
        store.close()  # the app opens it next
    return Stocked(folder, ranking)


@pytest.fixture
def stocked(monkeypatch, tmp_path, stocked_folder) -> Path:
    """The app on the shared store, with a judgements file of this test's own; returns that file's path."""
    path = tmp_path / "judgements.json"
    use_settings(monkeypatch, make_settings(stocked_folder.folder, judgements_path=path))
    return path


def plain(elements) -> list[str]:
    """The elements' texts as shown: without the backslashes that escape markdown."""
    return [t.replace("\\", "") for t in texts(elements)]


def box(question: str, chunk_id: str) -> str:
    return f"judge:{JudgedQuestion(question).key}:{chunk_id}"


def button(at, label: str):
    return next(b for b in at.button if b.label == label)


def add_question(at, question: str):
    at.text_input(key="evaluate_new_question").input(question)
    button(at, "Add question").click().run()
    assert not at.exception, at.exception
    return at


def judge_refund(at, stocked_folder: Stocked):
    """Add REFUND and tick the chunk that says 14 days, the only relevant one."""
    add_question(at, REFUND)
    at.checkbox(key=box(REFUND, stocked_folder.refund_chunk)).check()
    button(at, "Save judgements").click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.needs_test_reranker  # the test model moves REFUND's chunk from 2nd to 1st (helped)
def test_judging_a_question_scores_both_orders_and_the_judgements_survive_a_restart(stocked, stocked_folder):
    at = add_question(start("pages/evaluate.py"), REFUND)
    assert any(REFUND in s for s in plain(at.success))
    assert at.selectbox(key="evaluate_question").value == REFUND

    # The pool: both top 10s together, in file/position order, without scores.
    pool = judging_pool(stocked_folder.ranking)
    shown = [c.key for c in at.checkbox]
    assert shown == [box(REFUND, s.chunk_id) for s in pool]
    assert 10 < len(pool) <= 20, "the two top 10s differ, and together are at most the whole candidate list"
    assert [c.label for c in at.checkbox] == [escape(s.location) for s in pool]
    in_bi_order = [s.chunk_id for s in stocked_folder.ranking.candidates]
    in_ce_order = [s.chunk_id for s in stocked_folder.ranking.reranked_order]
    order = [s.chunk_id for s in pool]
    assert order != [i for i in in_bi_order if i in order] and order != [i for i in in_ce_order if i in order]
    written = " ".join(texts(at.markdown) + texts(at.caption) + texts(at.text))
    assert not any(f"{s.ce_score:.4f}" in written or f"{s.bi_score:.4f}" in written for s in pool), "no scores"
    assert any("No question can be scored yet" in i for i in texts(at.info))

    judge_refund(at, stocked_folder)
    assert f"Saved: 1 relevant, {len(pool) - 1} not relevant." in plain(at.success)

    # Both columns, with rag's own figures for the two orders of this pool.
    overall = at.dataframe[0].value
    assert list(overall.columns) == ["metric", "bi-encoder only", "with cross-encoder", "change"]
    assert list(overall["metric"]) == ["Recall@3", "MRR@10", "nDCG@3"]
    relevant = {stocked_folder.refund_chunk}
    bi = score_order([s.chunk_id for s in stocked_folder.ranking.candidates], relevant)
    ce = score_order([s.chunk_id for s in stocked_folder.ranking.reranked_order], relevant)
    assert bi != ce, "a question whose relevant chunk reranking moves, so that the columns cannot be mixed up"
    assert list(overall["bi-encoder only"]) == pytest.approx(bi.as_tuple())
    assert list(overall["with cross-encoder"]) == pytest.approx(ce.as_tuple())
    per_question = at.dataframe[1].value
    assert list(per_question["status"]) == ["scored"]
    assert per_question["MRR@10"][0] == f"{bi.mrr:.2f} → {ce.mrr:.2f}"
    assert per_question["nDCG@3"][0] == f"{bi.ndcg:.2f} → {ce.ndcg:.2f}"
    assert "Chunks nobody judged count as not relevant" in " ".join(texts(at.caption))
    helped = f"**Helped**  \n{REFUND} — nDCG@3 {ce.ndcg - bi.ndcg:+.2f} · MRR@10 {ce.mrr - bi.mrr:+.2f}"
    assert helped in plain(at.markdown), "reranking lifted the policy's chunk from 2nd to 1st"
    charts = at.get("vega_lite_chart")
    assert '"bi-encoder only"' in charts[0].proto.spec and '"with cross-encoder"' in charts[0].proto.spec

    # Saved beside the store, and shown again by a new session.
    question = saved.load(stocked).find(REFUND)
    assert question.relevant_ids() == relevant and len(question.judgements) == len(pool)
    again = start("pages/evaluate.py")
    assert again.selectbox(key="evaluate_question").value == REFUND
    assert again.checkbox(key=box(REFUND, stocked_folder.refund_chunk)).value is True
    assert sum(c.value for c in again.checkbox) == 1
    assert list(again.dataframe[1].value["status"]) == ["scored"]


def test_the_threshold_suggestion_comes_from_the_judged_scores_and_can_be_used_for_the_session(stocked,
                                                                                               stocked_folder):
    at = judge_refund(start("pages/evaluate.py"), stocked_folder)
    refund = next(s for s in stocked_folder.ranking.candidates if s.chunk_id == stocked_folder.refund_chunk)
    expected = int(refund.ce_score * 100) / 100  # the only answerable question: its relevant chunk, rounded down
    default = rerank_gate(make_settings(stocked.parent)).threshold  # the loaded model's calibrated gate
    assert f"**Suggested threshold: {expected:.2f}** (this session uses {default:.2f})" in texts(at.markdown)
    assert any("the highest threshold that still lets each of them reach the LLM" in c for c in texts(at.caption))
    assert len(at.get("vega_lite_chart")) == 2, "the metrics chart and the score chart"
    button(at, f"Use {expected:.2f} for this session").click().run()
    assert not at.exception, at.exception
    assert at.sidebar.slider(key="threshold").value == pytest.approx(expected)
    assert f"**Suggested threshold: {expected:.2f}** (this session uses {expected:.2f})" in texts(at.markdown)
    assert button(at, f"Use {expected:.2f} for this session").disabled

    at.sidebar.toggle(key="hybrid").set_value(True).run()  # the first order is then the fused one, and says so
    assert not at.exception, at.exception
    assert any("Hybrid search is on: 'bi-encoder only' is the bi-encoder and BM25 fused." in c
               for c in plain(at.caption))


def test_questions_import_from_a_csv_and_a_csv_without_a_question_column_says_so(stocked):
    at = start("pages/evaluate.py")
    assert any("Add a question above" in i for i in texts(at.info))
    upload = [("questions.csv", f"question\n{REFUND}\nWhere do orders ship from?\n".encode(), "text/csv")]
    at.file_uploader(key="evaluate_upload").set_value(upload)
    button(at, "Import").click().run()
    assert not at.exception, at.exception
    assert "Imported questions.csv: 2 questions (2 new), 0 judgements." in plain(at.success)
    assert at.selectbox(key="evaluate_question").options == [f"{REFUND}  (not judged yet)",
                                                              "Where do orders ship from?  (not judged yet)"]
    assert [q.question for q in saved.load(stocked).questions] == [REFUND, "Where do orders ship from?"]

    at.file_uploader(key="evaluate_upload").set_value([("qs.csv", b"query\nHow long?\n", "text/csv")])
    button(at, "Import").click().run()
    assert not at.exception, at.exception
    assert any("qs.csv has no 'question' column" in e for e in plain(at.error))
    assert len(saved.load(stocked).questions) == 2, "nothing imported"


@pytest.mark.parametrize("export", ["judgements.json", "judgements.csv"])
def test_exported_judgements_import_back_into_an_empty_file(monkeypatch, stocked, stocked_folder, tmp_path, export):
    at = judge_refund(start("pages/evaluate.py"), stocked_folder)
    downloads = {b.label: b for b in at.get("download_button")}
    assert set(downloads) == {"Download as JSON", "Download as CSV"}
    assert not any(b.proto.disabled for b in downloads.values())
    judged = saved.load(stocked)
    data = saved.to_json(judged) if export.endswith(".json") else saved.to_csv(judged)  # what the buttons offer

    elsewhere = tmp_path / "elsewhere" / "judgements.json"
    monkeypatch.setenv("RAG_JUDGEMENTS_PATH", str(elsewhere))
    at = start("pages/evaluate.py")
    at.file_uploader(key="evaluate_upload").set_value([(export, data.encode(), "text/plain")])
    button(at, "Import").click().run()
    assert not at.exception, at.exception
    assert f"Imported {export}: 1 question (1 new), {len(judged.questions[0].judgements)} judgements." in \
        plain(at.success)
    assert saved.load(elsewhere) == judged
    assert at.checkbox(key=box(REFUND, stocked_folder.refund_chunk)).value is True
    assert list(at.dataframe[1].value["status"]) == ["scored"]


def test_a_corrupt_judgements_file_is_reported_kept_and_can_be_moved_aside(stocked):
    stocked.write_text('{"format": "rag-judgements", "version": 1, "questions": [{"question": ')
    at = start("pages/evaluate.py")
    error = " ".join(plain(at.error))
    assert str(stocked) in error and "is not valid JSON" in error and "move it aside" in error
    assert not at.checkbox and not at.text_input, "nothing that could save over it"
    button(at, "Move the file aside and start over").click().run()
    assert not at.exception, at.exception
    (moved,) = stocked.parent.glob("judgements.json.corrupt-*")
    assert moved.read_text().startswith('{"format"') and not stocked.exists()
    assert any("Moved the unreadable file" in s for s in plain(at.success))
    assert any("Add a question above" in i for i in texts(at.info))


def test_judgements_of_a_deleted_document_show_as_stale_and_can_be_forgotten(monkeypatch, tmp_path, bi_encoder,
                                                                            cross_encoder):
    settings = make_settings(tmp_path)
    stock(settings, bi_encoder, {"policy.md": POLICY.encode(), "notes.txt": NOTES})
    store = Store(settings, bi_encoder)
    try:
        ranking = Pipeline(settings, store, cross_encoder).retrieve(REFUND, rerank=True)
    finally:
        store.close()
    judgements = Judgements()
    refund = next(s.chunk_id for s in ranking.candidates if "14 days" in s.text)
    judgements.judge(REFUND, ranking.candidates, {refund})
    path = settings.judgements_path
    saved.save(judgements, path)
    use_settings(monkeypatch, settings)

    at = start("pages/documents.py")
    at.multiselect(key="documents_to_delete").select("policy.md").run()
    button(at, "Delete").click().run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, at.exception
    policy_chunks = sum(s.file == "policy.md" for s in ranking.candidates)
    warning = " ".join(plain(at.warning))
    assert f"{policy_chunks} judged chunks of this question no longer exist" in warning
    assert "not scored until you judge its new candidates" in warning
    assert list(at.dataframe[0].value["status"]) == ["stale: judge again"], "not scored as a miss"
    notes = [box(REFUND, s.chunk_id) for s in ranking.candidates if s.file == "notes.txt"]
    assert [c.key for c in at.checkbox] == notes, "only the chunks that are left"

    button(at, "Forget the stale judgements").click().run()
    assert not at.exception, at.exception
    assert f"Forgot {policy_chunks} stale judgements." in plain(at.success)
    assert not at.warning
    assert list(at.dataframe[0].value["status"]) == ["nothing relevant (not covered)"]
    assert {j.file for j in saved.load(path).find(REFUND).judgements.values()} == {"notes.txt"}


def test_with_no_documents_the_page_points_to_the_documents_page(monkeypatch, tmp_path):
    use_settings(monkeypatch, make_settings(tmp_path))
    at = start("pages/evaluate.py")
    assert any("No documents yet" in w for w in texts(at.warning))
    assert [link.proto.page for link in at.page_link] == ["documents"]


def test_document_text_and_names_in_the_pool_are_shown_as_text_not_markup(monkeypatch, tmp_path, bi_encoder):
    hostile = "Refunds take **14 days** <b>bold</b> ![x](http://example.invalid/x.png) $x^2$ :red[red]."
    settings = make_settings(tmp_path)
    stock(settings, bi_encoder, {"_notes_ *x*.md": hostile.encode()})
    use_settings(monkeypatch, settings)
    at = add_question(start("pages/evaluate.py"), "How long do *refunds* take? <i>")
    (only,) = at.checkbox
    assert only.label == "\\_notes\\_ \\*x\\*.md"
    assert hostile in texts(at.text)
    assert "Added “How long do \\*refunds\\* take? \\<i\\>”" in texts(at.success)
