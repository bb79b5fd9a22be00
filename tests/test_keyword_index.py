"""The BM25 keyword index that lives with the store: it follows ingest, replace and delete exactly, survives
reopening, is built once for a store that has none, and follows other apps' writes on a Chroma server."""

from rank_bm25 import BM25Okapi

from rag.documents.library import Library, split_document
from rag.documents.loaders import load_document
from rag.pipeline import Pipeline
from rag.retrieval.hybrid import KeywordIndex, catch_up
from rag.retrieval.keyword_index import _Postings, tokenize
from rag.retrieval.store import Store, keyword_index_file
from tests.conftest import make_settings

ZEBRA = b"Zebra crossings are painted in black and white stripes."
GIRAFFE = b"The giraffe has a long neck and eats acacia leaves."
OTHER = b"Meeting notes: the team discussed the budget for the next quarter."


def hits(store, word: str) -> list[tuple[str, str]]:
    return [(d.metadata["source"], d.metadata["doc_sha"]) for d in KeywordIndex().search(store, word, 10)]


def test_a_deleted_document_is_never_a_keyword_hit(pipeline, settings, bi_encoder):
    pipeline.library.ingest_bytes("zebra.txt", ZEBRA)
    pipeline.library.ingest_bytes("other.txt", OTHER)
    assert [name for name, _ in hits(pipeline.store, "zebra")] == ["zebra.txt"]
    pipeline.library.delete("zebra.txt")
    assert hits(pipeline.store, "zebra") == []
    hybrid = pipeline.retrieve("zebra stripes", rerank=False, hybrid=True)
    assert {s.file for s in hybrid.candidates} == {"other.txt"}
    pipeline.store.close()
    reopened = Store(settings, bi_encoder)
    try:
        assert hits(reopened, "zebra") == [] and [n for n, _ in hits(reopened, "budget")] == ["other.txt"]
    finally:
        reopened.close()


def test_a_replaced_documents_old_text_is_never_a_keyword_hit(pipeline):
    pipeline.library.ingest_bytes("animal.txt", ZEBRA)
    assert [n for n, _ in hits(pipeline.store, "zebra")] == ["animal.txt"]
    assert pipeline.library.ingest_bytes("animal.txt", GIRAFFE).status == "replaced"
    record = pipeline.store.get_record("animal.txt")
    assert hits(pipeline.store, "zebra") == []
    assert hits(pipeline.store, "giraffe") == [("animal.txt", record.sha256)]


def test_the_index_survives_reopening_without_being_rebuilt(pipeline, settings, bi_encoder):
    pipeline.library.ingest_bytes("zebra.txt", ZEBRA)
    pipeline.library.ingest_bytes("giraffe.txt", GIRAFFE)
    assert [n for n, _ in hits(pipeline.store, "zebra")] == ["zebra.txt"]
    pipeline.store.close()
    reopened = Store(settings, bi_encoder)
    try:
        assert catch_up(reopened) == 0, "a reopened store reads nothing from Chroma again"
        assert [n for n, _ in hits(reopened, "giraffe")] == ["giraffe.txt"]
        Library(reopened, settings).ingest_bytes("other.txt", OTHER)  # and it keeps following writes
        assert catch_up(reopened) == 0 and [n for n, _ in hits(reopened, "budget")] == ["other.txt"]
    finally:
        reopened.close()


def test_an_existing_store_without_the_index_gets_one_with_every_document(pipeline, settings, bi_encoder):
    # More documents than rag.retrieval.hybrid.BULK_READ, so that the build reads the collection in one pass.
    files = [(f"note{i:02}.txt", f"Note {i}: word{i} and the shared word kiwi.".encode()) for i in range(60)]
    pipeline.library.ingest_many(files)
    pipeline.store.close()
    path = keyword_index_file(settings)
    for leftover in path.parent.glob(path.name + "*"):  # as if the store were made before the index existed
        leftover.unlink()
    reopened = Store(settings, bi_encoder)
    try:
        assert reopened.keywords.documents() == {}
        assert catch_up(reopened) == 60
        assert reopened.keywords.documents() == {r.name: r.sha256 for r in reopened.list_records()}
        assert [n for n, _ in hits(reopened, "word17")] == ["note17.txt"]
        assert len(hits(reopened, "kiwi")) == 10
    finally:
        reopened.close()


def test_an_interrupted_write_leaves_no_keyword_hits(pipeline, settings, bi_encoder):
    pipeline.library.ingest_bytes("other.txt", OTHER)
    hits(pipeline.store, "budget")
    # Cut off before the commit point: chunks in Chroma, no record. They are never keyword hits.
    chunks = split_document(load_document(ZEBRA, "zebra.txt"), "zebra.txt", "0" * 64, settings)
    pipeline.store.add_chunks(chunks, bi_encoder.embed_documents([c.page_content for c in chunks]))
    assert hits(pipeline.store, "zebra") == []
    # Cut off after the commit point but before the index was told: the next process finds the document.
    library = Library(pipeline.store, settings)
    prepared = library._prepare("giraffe.txt", GIRAFFE)
    pipeline.store.add_chunks(prepared.chunks, bi_encoder.embed_documents([c.page_content for c in prepared.chunks]))
    pipeline.store.put_records([prepared.record])
    pipeline.store.close()
    reopened = Store(settings, bi_encoder)
    try:
        assert hits(reopened, "giraffe") == [("giraffe.txt", prepared.record.sha256)]
        assert hits(reopened, "zebra") == []
    finally:
        reopened.close()


def test_two_apps_on_one_chroma_server_follow_each_others_writes(chroma_server, tmp_path, bi_encoder):
    host, port, _ = chroma_server
    first = make_settings(tmp_path / "a", chroma_host=host, chroma_port=port, collection="keywords-test")
    second = first.model_copy(update={"keyword_index_dir": tmp_path / "b" / "keywords"})
    a, b = Store(first, bi_encoder), Store(second, bi_encoder)
    b_cli = Store(second, bi_encoder)  # a second process of the second app's machine shares its local file
    try:
        assert keyword_index_file(first) != keyword_index_file(second)
        assert keyword_index_file(second).parent == tmp_path / "b" / "keywords"
        library = Library(a, first)
        library.ingest_bytes("animal.txt", ZEBRA)
        assert [n for n, _ in hits(b, "zebra")] == ["animal.txt"]
        library.ingest_bytes("animal.txt", GIRAFFE)
        assert hits(b, "zebra") == [] and [n for n, _ in hits(b, "giraffe")] == ["animal.txt"]
        Library(b_cli, second).ingest_bytes("other.txt", OTHER)  # written through the shared file
        assert [n for n, _ in hits(b, "budget")] == ["other.txt"]
        assert [n for n, _ in hits(a, "budget")] == ["other.txt"]
        library.delete("animal.txt")
        assert hits(b, "giraffe") == [] and hits(b_cli, "giraffe") == []
        assert not (tmp_path / "a" / "chroma").exists(), "server mode must not create the embedded folder"
        ranking = Pipeline(second, b, None).retrieve("budget", rerank=False, hybrid=True)
        assert {s.file for s in ranking.candidates} == {"other.txt"}
    finally:
        a.drop_all()
        for store in (a, b, b_cli):
            store.close()


def test_scores_are_rank_bm25s_after_any_sequence_of_writes():
    texts = [OTHER.decode(), ZEBRA.decode(), GIRAFFE.decode(), "zebra and giraffe and zebra again", "the budget"]
    postings = _Postings()
    for i, text in enumerate(texts):
        postings.add(f"d{i}", "x", [(i, text)])
    postings.remove("d0")
    postings.add("d0", "y", [(10, "a zebra budget meeting")])
    postings.remove("d2")
    live = {1: texts[1], 3: texts[3], 4: texts[4], 10: "a zebra budget meeting"}
    reference = BM25Okapi([tokenize(t) for t in live.values()])
    for query in ("zebra", "budget zebra", "giraffe", "the the budget"):
        scores = dict(zip(live, reference.get_scores(tokenize(query))))
        expected = sorted((s for s in live if set(tokenize(live[s])) & set(tokenize(query))),
                          key=lambda s: -scores[s])
        assert postings.top(query, 10) == expected, query
