"""Documents in and out: idempotent ingest, replace, delete, pages, provenance, and nothing half-written."""

import pytest

from rag.documents.library import Library, clean_name
from rag.errors import EmbedderMismatch, RagError, UnknownDocument
from rag.retrieval.embeddings import BiEncoder
from rag.retrieval.store import Store
from tests.conftest import make_settings
from tests.samples import POLICY, make_pdf


@pytest.fixture
def library(store, settings):
    return Library(store, settings)


def snapshot(store):
    return sorted(store.chunk_ids()), [r.__dict__ for r in store.list_records()]


def test_ingesting_the_same_file_twice_changes_nothing(library, store):
    first = library.ingest_bytes("policy.md", POLICY.encode())
    before = snapshot(store)
    second = library.ingest_bytes("policy.md", POLICY.encode())
    assert first.status == "added" and first.chunks > 1
    assert second.status == "unchanged" and second.chunks == first.chunks
    assert snapshot(store) == before


def test_chunk_ids_are_content_hashes_that_do_not_depend_on_the_store(library, store, tmp_path, bi_encoder):
    library.ingest_bytes("policy.md", POLICY.encode())
    other = Store(make_settings(tmp_path / "other"), bi_encoder)
    try:
        Library(other, other.settings).ingest_bytes("policy.md", POLICY.encode())
        assert sorted(other.chunk_ids()) == sorted(store.chunk_ids())
    finally:
        other.close()


def test_a_changed_file_with_the_same_name_replaces_its_old_chunks(library, store):
    library.ingest_bytes("policy.md", POLICY.encode())
    old_ids = set(store.chunk_ids())
    outcome = library.ingest_bytes("policy.md", POLICY.replace("14 days", "30 days").encode())
    assert outcome.status == "replaced"
    texts = " ".join(d.page_content for d in store.get_chunks({"source": "policy.md"}))
    assert "30 days" in texts and "14 days" not in texts
    assert len(store.chunk_ids()) == outcome.chunks
    assert set(store.chunk_ids()) != old_ids
    assert [r.chunks for r in store.list_records()] == [outcome.chunks]


def test_deleting_a_document_removes_all_its_vectors(library, store):
    library.ingest_bytes("policy.md", POLICY.encode())
    library.ingest_bytes("other.txt", b"The moon is made of rock and dust.")
    removed = library.delete("policy.md")
    assert removed > 0
    assert store.get_chunks({"source": "policy.md"}) == []
    assert [r.name for r in library.documents()] == ["other.txt"]
    assert all(d.metadata["source"] == "other.txt" for d in store.get_chunks())
    with pytest.raises(UnknownDocument):
        library.delete("policy.md")


def test_pdf_chunks_carry_their_page_number(library, store):
    library.ingest_bytes("fruit.pdf", make_pdf("Apples grow in Norway.", "Bananas grow in Ecuador.", "Kiwis."))
    pages = {d.page_content.strip(): d.metadata["page"] for d in store.get_chunks()}
    assert pages == {"Apples grow in Norway.": 1, "Bananas grow in Ecuador.": 2, "Kiwis.": 3}
    assert library.documents()[0].pages == 3


def test_a_rejected_file_leaves_the_store_exactly_as_it_was(library, store):
    library.ingest_bytes("policy.md", POLICY.encode())
    before = snapshot(store)
    for name, data in [("broken.pdf", b"%PDF-1.4 nonsense"), ("empty.txt", b""), ("policy.md", b"\x00\x01" * 50)]:
        outcome = library.ingest_bytes(name, data)
        assert outcome.status == "rejected" and outcome.reason
    assert snapshot(store) == before


def test_a_collection_refuses_another_embedder_and_says_how_to_rebuild(library, settings, tmp_path):
    library.ingest_bytes("policy.md", POLICY.encode())

    class OtherEmbedder(BiEncoder):
        def __init__(self):  # a different model name and dimension, without loading anything
            self.name, self.dimension = "some/other-model", 768

    with pytest.raises(EmbedderMismatch, match="built with sentence-transformers/all-MiniLM-L6-v2") as refused:
        Store(settings, OtherEmbedder())
    assert "RAG_EMBEDDING_MODEL" in refused.value.fix and "rebuild" in refused.value.fix


def test_chunks_without_a_document_record_are_ignored_and_repaired(library, store, pipeline):
    library.ingest_bytes("policy.md", POLICY.encode())
    # Simulate an ingest cut off after writing chunks but before its record: the chunks have no record.
    stray = library.store.get_chunks({"source": "policy.md"})
    store.delete_record("policy.md")
    library.ingest_bytes("other.txt", b"The moon is made of rock and dust.")
    ranking = pipeline.retrieve("How long does a refund take?", rerank=False)
    assert {s.file for s in ranking.candidates} == {"other.txt"}
    assert library.repair() == len(stray)
    assert {d.metadata["source"] for d in store.get_chunks()} == {"other.txt"}


@pytest.mark.parametrize("raw, clean", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\report.pdf", "report.pdf"),
    ("bad\x00name\x1b.txt", "badname.txt"),
    ("..", "unnamed"),
])
def test_file_names_are_labels_never_paths(raw, clean):
    assert clean_name(raw) == clean


def test_long_names_are_shortened_keeping_the_extension():
    name = clean_name("x" * 300 + ".pdf")
    assert len(name) <= 200 and name.endswith(".pdf")


def test_ingesting_many_files_in_batches_gives_the_same_store_as_one_by_one(library, store, tmp_path, bi_encoder):
    files = [("policy.md", POLICY.encode()), ("bad.pdf", b"%PDF-1.4 broken"), ("moon.txt", b"The moon is rock."),
             ("sun.txt", b"The sun is a star.")]
    outcomes = library.ingest_many(files, batch_chunks=2)
    assert [o.status for o in outcomes] == ["added", "rejected", "added", "added"]
    other = Store(make_settings(tmp_path / "one-by-one"), bi_encoder)
    try:
        one = Library(other, other.settings)
        for name, data in files:
            one.ingest_bytes(name, data)
        assert sorted(other.chunk_ids()) == sorted(store.chunk_ids())
        assert [(r.name, r.sha256, r.chunks) for r in other.list_records()] == \
            [(r.name, r.sha256, r.chunks) for r in store.list_records()]
    finally:
        other.close()


def test_rebuild_re_embeds_every_chunk_with_the_new_embedder(library, store, settings, tmp_path, bi_encoder):
    import shutil

    from rag.retrieval.store import rebuild

    library.ingest_bytes("policy.md", POLICY.encode())
    ids_before, records_before = sorted(store.chunk_ids()), store.list_records()
    store.close()
    other_folder = tmp_path / "other-embedder"
    shutil.copytree(settings.reranker_model, other_folder)  # a different real model, loaded as a bi-encoder
    other = BiEncoder(str(other_folder))
    other_settings = settings.model_copy(update={"embedding_model": str(other_folder)})
    assert rebuild(other_settings, other) == len(ids_before)
    rebuilt = Store(other_settings, other)
    try:
        assert sorted(rebuilt.chunk_ids()) == ids_before and rebuilt.list_records() == records_before
        assert rebuilt.search("refund", k=1)[0][0].metadata["source"] == "policy.md"
    finally:
        rebuilt.close()
    with pytest.raises(EmbedderMismatch, match=f"built with {other_folder}"):
        Store(settings, bi_encoder)


def test_ingesting_many_files_reports_each_file_read_each_batch_embedded_and_each_outcome(library, store):
    events = []
    outcomes = library.ingest_many(
        [("policy.md", POLICY.encode()), ("bad.pdf", b"%PDF-1.4 broken"), ("moon.txt", b"The moon is rock."),
         ("sun.txt", b"The sun is a star.")], batch_chunks=2,
        on_start=lambda i, name: events.append(("read", name)),
        on_chunks=lambda done, total: events.append(("embedded", done, total)),
        on_file=lambda o: events.append(("settled", o.name, o.status)))
    policy = outcomes[0].chunks
    assert policy >= 2, "the policy fills a batch of 2 chunks on its own"
    # Batches: the policy alone, then moon and sun together; a bad file is settled at once; a good one with its batch.
    assert events == [("read", "policy.md"), ("embedded", policy, policy), ("settled", "policy.md", "added"),
                      ("read", "bad.pdf"), ("settled", "bad.pdf", "rejected"),
                      ("read", "moon.txt"), ("read", "sun.txt"), ("embedded", 2, 2),
                      ("settled", "moon.txt", "added"), ("settled", "sun.txt", "added")]
    assert store.count_chunks() == policy + 2


def test_two_files_of_one_batch_with_one_name_the_second_is_refused_unless_identical(library, store):
    outcomes = library.ingest_many([("moon.txt", b"The moon is rock."), ("moon.txt", b"The moon is cheese."),
                                    ("moon.txt", b"The moon is rock.")])
    assert [o.status for o in outcomes] == ["added", "rejected", "unchanged"]
    assert "same name" in outcomes[1].reason
    assert [d.page_content for d in store.get_chunks()] == ["The moon is rock."]


def test_the_search_breadth_setting_is_given_to_new_collections_and_to_rebuilt_ones(library, store, settings):
    from rag.retrieval.store import rebuild

    assert store._chunks.configuration_json["hnsw"]["ef_search"] == settings.hnsw_ef_search
    library.ingest_bytes("policy.md", POLICY.encode())
    store.close()
    wider = settings.model_copy(update={"hnsw_ef_search": settings.hnsw_ef_search + 100})
    assert rebuild(wider, store.embedder) > 0
    reopened = Store(wider, store.embedder)
    try:
        hnsw = reopened._chunks.configuration_json["hnsw"]
        assert (hnsw["space"], hnsw["ef_search"]) == ("cosine", wider.hnsw_ef_search)
        assert reopened.search("refund", k=1)[0][0].metadata["source"] == "policy.md"
    finally:
        reopened.close()


def test_whole_collection_reads_are_paged_and_complete(library, store):
    from rag.retrieval.store import read_all

    for i in range(3):
        assert library.ingest_bytes(f"note{i}.md", (f"Note {i}. " + POLICY).encode()).status == "added"
    everything = store.get_chunks()
    for page in (1, 2, 7, len(everything), len(everything) + 1):
        got = read_all(store._chunks, None, ["documents"], store.translate_errors, page=page)
        assert sorted(got["ids"]) == sorted(d.id for d in everything)
        assert len(got["documents"]) == len(everything)


def test_a_write_that_fails_stops_the_ingest_with_earlier_batches_kept(library, store, monkeypatch):
    put_records, calls = store.put_records, []

    def second_write_fails(records):
        calls.append([r.name for r in records])
        if len(calls) == 2:
            raise RagError("the disk is full")
        return put_records(records)

    monkeypatch.setattr(store, "put_records", second_write_fails)
    files = [("moon.txt", b"The moon is rock."), ("sun.txt", b"The sun is a star."), ("mars.txt", b"Mars is red.")]
    with pytest.raises(RagError, match="disk is full"):
        library.ingest_many(files, batch_chunks=1)
    assert calls == [["moon.txt"], ["sun.txt"]], "the third batch is never written once the second failed"
    assert [r.name for r in store.list_records()] == ["moon.txt"]
    # The failed batch's chunks were written before its commit point: nobody vouches for them, and repair drops them.
    assert library.repair() == 1
    assert store.chunk_sources() == [("moon.txt", store.get_record("moon.txt").sha256)]
