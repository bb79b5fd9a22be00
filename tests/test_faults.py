"""Faults: Ollama dying mid-answer and coming back, a second process on the store, broken model folders."""

import subprocess
import sys

import pytest

from ollama_standin.testing import free_port, start_standin, stop_standin
from rag.encoders.models import resolve_model
from rag.errors import LLMError, StoreBusy
from rag.pipeline import Pipeline
from rag.retrieval.store import Store
from tests.conftest import RERANKER, cli_env, make_settings, run_cli
from tests.samples import POLICY


def test_ollama_killed_mid_answer_marks_it_cut_off_and_recovers_when_back(tmp_path, store, cross_encoder):
    port = free_port()
    url, server = start_standin(port)
    try:
        # Whole chunks and no gate (the question is vague): a long answer, still streaming when the server dies.
        settings = make_settings(tmp_path, url, num_predict=400, context="chunks", min_rerank_score=0.0)
        pipeline = Pipeline(settings, store, cross_encoder)
        pipeline.library.ingest_bytes("policy.md", POLICY.encode())
        answer = pipeline.ask("Describe every policy in the documents in detail, section by section.")
        tokens = iter(answer.tokens)
        first = next(tokens)
        server.kill()  # a crash, not a graceful shutdown (which would let the answer finish)
        server.wait()
        with pytest.raises(LLMError, match="broke off|not reachable"):
            for _ in tokens:
                pass
        assert answer.cut_off and answer.text.startswith(first)
        assert answer.sources, "the sources stay known after the failure"
        url, server = start_standin(port)  # the same address: no restart of the pipeline
        again = pipeline.ask("How long does a refund take?")
        assert again.consume().strip() and not again.cut_off
    finally:
        stop_standin(server)


def test_a_second_process_on_the_same_store_folder_is_refused_with_the_reason(tmp_path, store, settings):
    result = run_cli("docs", env=cli_env(settings), process=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "in use by another process" in result.stderr and "RAG_CHROMA_HOST" in result.stderr
    store.close()
    assert run_cli("docs", env=cli_env(settings), process=True).returncode == 0


def test_a_second_store_in_the_same_process_shares_the_folder(settings, store, bi_encoder):
    from rag.documents.library import Library

    other = Store(settings, bi_encoder)  # not refused: the folder's lock is this process's already
    Library(store, settings).ingest_bytes("policy.md", POLICY.encode())
    assert [r.name for r in other.list_records()] == ["policy.md"], "what one writes, the other reads"
    other.close()
    assert [r.name for r in store.list_records()] == ["policy.md"], "closing one leaves the other working"
    refused = run_cli("docs", env=cli_env(settings), process=True)
    assert refused.returncode == 1 and "in use by another process" in refused.stderr, "the first one still holds it"
    store.close()
    assert run_cli("docs", env=cli_env(settings), process=True).returncode == 0, "closing the last one frees the folder"


def test_a_store_locked_by_a_live_process_is_refused(tmp_path, bi_encoder):
    settings = make_settings(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from filelock import FileLock; from pathlib import Path; "
        f"p = Path({str(settings.chroma_path)!r}); p.mkdir(parents=True, exist_ok=True); "
        "l = FileLock(str(p / '.rag-process.lock')); l.acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusy, match="in use by another process"):
            Store(settings, bi_encoder)
    finally:
        holder.kill()
        holder.wait()
    Store(settings, bi_encoder).close()  # free again once the other process is gone


def test_doctor_names_a_corrupt_model_folder_and_the_fix(tmp_path, settings):
    import shutil

    broken = tmp_path / "broken-reranker"
    shutil.copytree(resolve_model(RERANKER), broken)  # a hub id's cache folder holds links: copied as files
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = run_cli("doctor", env=cli_env(settings, RAG_RERANKER_MODEL=str(broken)))
    line = next(ln for ln in result.stdout.splitlines() if " reranker:" in ln)
    assert result.returncode == 1 and line.startswith("problem")
    assert f"{broken} is incomplete or corrupt" in line and "RAG_RERANKER_MODEL" in line


def test_the_app_survives_its_chroma_server_stopping_and_recovers_when_it_is_back(monkeypatch, tmp_path, ollama_url,
                                                                                  bi_encoder):
    from streamlit.testing.v1 import AppTest

    from rag.documents.library import Library
    from tests.conftest import start_chroma_server
    from tests.test_app import APP, TIMEOUT, texts, use_settings

    port = free_port()
    server = start_chroma_server(tmp_path / "server-data", port)
    settings = make_settings(tmp_path, ollama_url, chroma_host="127.0.0.1", chroma_port=port, min_rerank_score=0.0)
    try:
        store = Store(settings, bi_encoder)
        Library(store, settings).ingest_bytes("policy.md", POLICY.encode())
        use_settings(monkeypatch, settings)
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.run()
        server.terminate()
        server.wait(timeout=30)
        at.chat_input[0].set_value("How long does a refund take?").run()
        shown = " ".join(texts(at.error)).replace("\\", "")
        assert not at.exception and f"no Chroma server answers at 127.0.0.1:{port}" in shown and "chroma run" in shown
        server = start_chroma_server(tmp_path / "server-data", port)
        at.run()  # the next interaction, with no restart of the app
        at.chat_input[0].set_value("How long does a refund take?").run()
        assert not at.exception and not at.error
        assert "policy.md" in " ".join(texts(at.chat_message[-1].markdown))
    finally:
        server.terminate()
        server.wait(timeout=30)
