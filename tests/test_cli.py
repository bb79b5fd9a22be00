"""`python -m rag`, run as a user would: the real store, both real encoders and the real small LLM. The sample
documents are ingested by a real `python -m rag` process; the other commands run the CLI's `main` in this process
(tests/conftest.py, `run_cli`), which skips each fresh process's ten seconds of imports."""

import json
import shutil

import pytest

from rag.retrieval.embeddings import BiEncoder
from rag.retrieval.store import Store
from tests.conftest import DATA, cli_env, make_settings, run_cli
from tests.samples import make_image_only_pdf


@pytest.fixture(scope="module")
def library_env(tmp_path_factory, ollama_url):
    """A store with the sample documents in data/, ingested once through the CLI."""
    settings = make_settings(tmp_path_factory.mktemp("cli"), ollama_url, chunk_size=1000, chunk_overlap=150)
    env = cli_env(settings)
    done = run_cli("ingest", str(DATA), env=env, process=True)  # the entry point, as a process
    assert done.returncode == 0, done.stderr
    return settings, env, done


def store_state(settings):
    store = Store(settings, BiEncoder(settings.embedding_model))
    try:
        return sorted(store.chunk_ids()), [r.__dict__ for r in store.list_records()]
    finally:
        store.close()


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_ingest_reports_each_file_and_docs_lists_them_with_chunk_counts(library_env):
    settings, env, ingested = library_env
    assert sorted(line.split()[0] for line in ingested.stdout.splitlines()) == ["added"] * 3
    docs = json.loads(run_cli("docs", "--json", env=env).stdout)
    assert {d["name"] for d in docs} == {"retrieval-and-reranking.md", "evaluating-rag.pdf", "glossary.html"}
    assert all(d["chunks"] > 0 for d in docs)
    assert next(d for d in docs if d["kind"] == "pdf")["pages"] == 4
    again = run_cli("ingest", str(DATA), env=env)
    assert again.returncode == 0 and sorted(line.split()[0] for line in again.stdout.splitlines()) == ["unchanged"] * 3


def test_ask_answers_from_the_sample_documents_with_sources(library_env):
    _, env, _ = library_env
    result = run_cli("ask", "How many questions does a test set need to see large differences?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["outcome"] == "answered" and answer["answer"].strip()
    top = answer["sources"][0]
    assert top["file"] == "evaluating-rag.pdf" and top["page"] == 2 and "30 to 50 questions" in top["text"]
    assert [s["number"] for s in answer["sources"]] == [1, 2, 3]
    assert set(answer["citations"]) <= {1, 2, 3}
    human = run_cli("ask", "On which port does Ollama serve its API by default?", env=env)
    assert human.returncode == 0, human.stderr
    assert "Sources:" in human.stdout and "[1] glossary.html" in human.stdout


def test_retrieve_shows_both_orders_and_no_rerank_keeps_the_bi_encoder_order(library_env):
    _, env, _ = library_env
    question = "What does the cross-encoder cost per candidate?"
    reranked = json.loads(run_cli("retrieve", question, "--json", env=env).stdout)
    assert reranked["reranked"] and len(reranked["candidates"]) == 20
    assert sorted(c["ce_rank"] for c in reranked["candidates"]) == list(range(1, 21))
    assert all(c["ce_score"] is not None and c["bi_score"] is not None for c in reranked["candidates"])
    kept_ce = [c["ce_rank"] for c in reranked["kept"]]
    assert kept_ce == [1, 2, 3]
    plain = json.loads(run_cli("retrieve", question, "--no-rerank", "--json", env=env).stdout)
    assert not plain["reranked"]
    assert [c["bi_rank"] for c in plain["kept"]] == [1, 2, 3]
    assert all(c["ce_score"] is None for c in plain["candidates"])
    table = run_cli("retrieve", question, env=env)
    assert table.returncode == 0 and "bi score" in table.stdout and "ce score" in table.stdout


def test_bad_files_are_rejected_one_line_each_and_the_store_is_unchanged(library_env, tmp_path):
    settings, env, _ = library_env
    before = store_state(settings)
    (tmp_path / "corrupt.pdf").write_bytes(b"%PDF-1.5\n1 0 obj << /Type /Catalog >> garbage")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    (tmp_path / "scan.pdf").write_bytes(make_image_only_pdf())
    result = run_cli("ingest", str(tmp_path), env=env)
    assert_one_line_error(result, "4 of 4 files rejected")
    reasons = {line.split()[1].rstrip(":"): line for line in result.stdout.splitlines()}
    assert "corrupt or truncated PDF" in reasons["corrupt.pdf"]
    assert "empty file" in reasons["empty.txt"]
    assert "unsupported file type: a PNG image" in reasons["photo.md"]
    assert "no text layer" in reasons["scan.pdf"]
    assert store_state(settings) == before


@pytest.mark.parametrize("args, fragments", [
    (("ingest", "/no/such/folder"), ["no such file or folder: /no/such/folder"]),
    (("delete", "missing.pdf"), ["no document named 'missing.pdf'"]),
    (("ask", "   "), ["the question is empty"]),
])
def test_bad_arguments_get_a_one_line_error(library_env, args, fragments):
    settings, env, _ = library_env
    before = store_state(settings)
    assert_one_line_error(run_cli(*args, env=env), *fragments)
    assert store_state(settings) == before


def test_a_bad_setting_gets_a_one_line_error(library_env):
    _, env, _ = library_env
    assert_one_line_error(run_cli("docs", env={**env, "RAG_CANDIDATES": "many"}), "bad setting", "candidates")


def test_ollama_down_and_model_missing_are_one_line_errors_with_the_fix(library_env):
    settings, env, _ = library_env
    before = store_state(settings)
    down = run_cli("ask", "What is a chunk?", env={**env, "RAG_OLLAMA_URL": "http://127.0.0.1:9"})
    assert_one_line_error(down, "Ollama is not reachable at http://127.0.0.1:9", "ollama serve")
    assert "Sources:" in down.stdout  # what was retrieved is still shown
    missing = run_cli("ask", "What is a chunk?", env={**env, "RAG_OLLAMA_MODEL": "llama3.2"})
    assert_one_line_error(missing, "'llama3.2' is not pulled", "ollama pull llama3.2")
    assert store_state(settings) == before


def test_another_embedder_is_refused_with_how_to_rebuild(library_env, tmp_path):
    settings, env, _ = library_env
    # A real, different model folder: the shared cross-encoder's BERT, loaded as a (mean-pooled) bi-encoder.
    other = tmp_path / "other-embedder"
    shutil.copytree(settings.reranker_model, other)
    result = run_cli("retrieve", "What is a chunk?", env={**env, "RAG_EMBEDDING_MODEL": str(other)})
    assert_one_line_error(result, "was built with sentence-transformers/all-MiniLM-L6-v2", "rebuild")


def test_delete_removes_a_document_and_its_chunks(library_env):
    settings, env, _ = library_env
    result = run_cli("delete", "glossary.html", env=env)
    assert result.returncode == 0 and "deleted glossary.html" in result.stdout
    chunk_ids, records = store_state(settings)
    assert "glossary.html" not in {r["name"] for r in records}
    store = Store(settings, BiEncoder(settings.embedding_model))
    try:
        assert store.get_chunks({"source": "glossary.html"}) == []
    finally:
        store.close()
    assert run_cli("ingest", str(DATA / "glossary.html"), env=env).returncode == 0


def test_doctor_says_ok_for_each_part_or_names_the_problem(library_env):
    _, env, _ = library_env
    healthy = run_cli("doctor", env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert [line.split()[0] for line in healthy.stdout.splitlines()] == ["ok"] * 5
    sick = run_cli("doctor", env={**env, "RAG_OLLAMA_URL": "http://127.0.0.1:9",
                                  "RAG_RERANKER_MODEL": "/no/such/model"})
    assert sick.returncode == 1
    lines = {line.split()[1].rstrip(":"): line for line in sick.stdout.splitlines()}
    assert lines["reranker"].startswith("problem") and "/no/such/model does not exist" in lines["reranker"]
    assert lines["ollama"].startswith("problem") and "ollama serve" in lines["ollama"]
    assert lines["embedder"].startswith("ok") and lines["store"].startswith("ok")


def test_without_a_cross_encoder_ask_and_retrieve_answer_in_bi_encoder_order_with_a_notice(library_env):
    _, env, _ = library_env
    env = {**env, "RAG_RERANKER_MODEL": "cross-encoder/not-on-this-machine"}
    ranked = run_cli("retrieve", "What is a chunk?", "--json", env=env)
    assert ranked.returncode == 0, ranked.stderr
    ranking = json.loads(ranked.stdout)
    assert not ranking["reranked"] and [c["bi_rank"] for c in ranking["kept"]] == [1, 2, 3]
    notices = [line for line in ranked.stderr.splitlines() if line.startswith("notice: ")]
    assert len(notices) == 1 and "cannot load cross-encoder cross-encoder/not-on-this-machine" in notices[0]
    assert "RAG_RERANKER_MODEL" in notices[0], "the notice names the fix"
    answered = run_cli("ask", "What is a chunk?", env=env)
    assert answered.returncode == 0, answered.stderr
    assert "Sources:" in answered.stdout and "notice: reranking unavailable" in answered.stderr
    forced = run_cli("retrieve", "What is a chunk?", "--rerank", env=env)
    assert_one_line_error(forced, "cannot load cross-encoder cross-encoder/not-on-this-machine")


def test_doctor_checks_the_cross_encoder_alone_and_says_what_happens_without_it(library_env):
    _, env, _ = library_env
    sick = run_cli("doctor", "--only", "reranker", env={**env, "RAG_RERANKER_MODEL": "/no/such/model"})
    (line,) = sick.stdout.splitlines()
    assert sick.returncode == 1 and line.startswith("problem  reranker:")
    assert "bi-encoder's order" in line and "-> fix:" in line
    healthy = run_cli("doctor", "--only", "reranker", env=env)
    assert healthy.returncode == 0 and healthy.stdout.startswith("ok")
