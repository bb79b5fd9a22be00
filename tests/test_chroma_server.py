"""The same pipeline against a Chroma server (`chroma run`): only the client differs."""

import pytest

from rag.errors import StoreUnavailable
from rag.pipeline import Pipeline
from rag.retrieval.store import Store
from tests.conftest import make_settings, start_chroma_server
from tests.samples import POLICY


def test_ingest_retrieve_and_delete_through_a_chroma_server(chroma_server, tmp_path, bi_encoder, cross_encoder):
    host, port, _ = chroma_server
    settings = make_settings(tmp_path, chroma_host=host, chroma_port=port, collection="server-test")
    store = Store(settings, bi_encoder)
    pipeline = Pipeline(settings, store, cross_encoder)
    assert pipeline.library.ingest_bytes("policy.md", POLICY.encode()).status == "added"
    assert pipeline.library.ingest_bytes("policy.md", POLICY.encode()).status == "unchanged"
    ranking = pipeline.retrieve("How long does a refund take?")
    assert "14 days" in ranking.kept[0].text and ranking.kept[0].ce_score is not None
    assert not (tmp_path / "chroma").exists(), "server mode must not create the embedded folder"
    pipeline.library.delete("policy.md")
    assert store.count_chunks() == 0


def test_a_second_client_sees_the_same_documents(chroma_server, tmp_path, bi_encoder):
    host, port, _ = chroma_server
    settings = make_settings(tmp_path, chroma_host=host, chroma_port=port, collection="shared-test")
    first, second = Store(settings, bi_encoder), Store(settings, bi_encoder)
    Pipeline(settings, first, None).library.ingest_bytes("policy.md", POLICY.encode())
    assert [r.name for r in second.list_records()] == ["policy.md"]


def test_a_stopped_chroma_server_is_a_clear_error_and_recovery_needs_no_restart(tmp_path, bi_encoder):
    from tests.conftest import free_port

    port = free_port()
    proc = start_chroma_server(tmp_path / "data", port)
    settings = make_settings(tmp_path, chroma_host="127.0.0.1", chroma_port=port)
    store = Store(settings, bi_encoder)
    Pipeline(settings, store, None).library.ingest_bytes("policy.md", POLICY.encode())
    proc.terminate()
    proc.wait(timeout=30)
    with pytest.raises(StoreUnavailable, match=f"no Chroma server answers at 127.0.0.1:{port}") as down:
        store.list_records()
    assert "chroma run" in down.value.fix
    with pytest.raises(StoreUnavailable):
        Store(settings, bi_encoder)
    proc = start_chroma_server(tmp_path / "data", port)
    try:
        assert [r.name for r in store.list_records()] == ["policy.md"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
