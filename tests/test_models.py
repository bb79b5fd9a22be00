"""Where a model setting points, and what a sentence-transformers folder declares without being loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.encoders.models import declared_dimension
from rag.errors import EmbedderMismatch
from rag.retrieval.embeddings import BiEncoder, DeferredBiEncoder
from tests.conftest import EMBEDDER, RERANKER, make_settings


def write_folder(folder: Path, modules: list[tuple[str, dict | None]]) -> Path:
    """A sentence-transformers folder's configuration: modules.json and each module's config.json (no weights)."""
    entries = []
    for i, (kind, config) in enumerate(modules):
        path = "" if kind == "Transformer" else f"{i}_{kind}"
        entries.append({"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"})
        if config is not None:
            (folder / path).mkdir(parents=True, exist_ok=True)
            (folder / path / "config.json").write_text(json.dumps(config))
    (folder / "modules.json").write_text(json.dumps(entries))
    return folder


def test_the_packaged_bi_encoder_declares_the_dimension_it_computes(bi_encoder):
    assert declared_dimension(EMBEDDER) == bi_encoder.dimension == 384


def test_a_dense_layer_sets_the_dimension_and_several_pooling_modes_multiply_it(tmp_path):
    pooling = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}
    assert declared_dimension(str(write_folder(tmp_path / "a", [("Transformer", None), ("Pooling", pooling)]))) == 768
    dense = {"in_features": 768, "out_features": 256}
    folder = write_folder(tmp_path / "b", [("Transformer", None), ("Pooling", pooling), ("Dense", dense),
                                           ("Normalize", None)])
    assert declared_dimension(str(folder)) == 256


def test_a_folder_that_does_not_say_gives_no_dimension(tmp_path):
    assert declared_dimension(str(write_folder(tmp_path / "a", [("Transformer", None), ("LSTM", {"size": 3})]))) is None
    (tmp_path / "bare").mkdir()
    assert declared_dimension(str(tmp_path / "bare")) is None


def test_a_deferred_bi_encoder_opens_a_store_and_lists_it_without_loading_then_embeds_as_the_real_one(tmp_path,
                                                                                                     bi_encoder):
    from rag.documents.library import Library
    from rag.retrieval.store import Store

    settings = make_settings(tmp_path)
    store = Store(settings, bi_encoder)
    Library(store, settings).ingest_bytes("plants.md", b"# Plants\n\nThe office plants are watered on Mondays.\n")
    store.close()

    deferred = DeferredBiEncoder(settings)
    reopened = Store(settings, deferred)  # the provenance check passes on the declared name and dimension
    try:
        assert [r.name for r in reopened.list_records()] == ["plants.md"] and not deferred.is_loaded
        assert Library(reopened, settings).delete("plants.md") > 0 and not deferred.is_loaded
        vector = deferred.embed_query("When are the plants watered?")
        assert deferred.is_loaded and isinstance(deferred.loaded(), BiEncoder)
        assert vector == bi_encoder.embed_query("When are the plants watered?")
        assert deferred.format == bi_encoder.format, "other attributes are the loaded encoder's"
    finally:
        reopened.close()


def test_a_store_built_with_another_embedder_is_refused_without_loading_the_configured_one(tmp_path, bi_encoder):
    from rag.retrieval.store import Store

    Store(make_settings(tmp_path), bi_encoder).close()
    other = make_settings(tmp_path, embedding_model=RERANKER)  # a folder without modules.json: no declared size
    deferred = DeferredBiEncoder(other)
    with pytest.raises(EmbedderMismatch, match="rebuild"):
        Store(other, deferred)
    assert not deferred.is_loaded, "the names differ: no need to load the model to know its dimension"
