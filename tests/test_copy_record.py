"""Encoders run from their copies' record (rag/encoders/copy_record.py): the recorded tokenizer tokenizes as the
library's, a process that finds the record never imports torch and computes what the library's way computes, and a
record it cannot trust is not used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sentence_transformers import CrossEncoder, SentenceTransformer

from rag.encoders import copy_record
from rag.encoders.copy_record import RunRecord, read_record, write_record
from rag.encoders.int8_build import read_calibration
from rag.encoders.models import resolve_model
from rag.encoders.quantize import SHOWN
from tests.conftest import EMBEDDER, REPO, RERANKER

QUESTION = "What do mitochondria make?"
PASSAGES = ["Mitochondria make most of the cell's ATP.", "Warsaw is the capital of Poland.", "ATP " * 400]
# What a fresh process loads and computes, as JSON: which heavy modules it imported, the scores and the vectors.
LOAD_AND_SCORE = f"""
import json, sys
from rag.retrieval.embeddings import BiEncoder
from rag.retrieval.rerank import SentenceTransformerCrossEncoder
bi = BiEncoder({EMBEDDER!r}, precision="auto")
cross = SentenceTransformerCrossEncoder({str(RERANKER)!r}, precision="auto")
scores = cross.score([({QUESTION!r}, p) for p in {PASSAGES!r}])
vectors = bi.embed_documents([{QUESTION!r}, *{PASSAGES!r}])
print(json.dumps({{"imported": [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules],
                  "formats": [bi.format, cross.format], "scores": scores, "vectors": vectors}}))
"""


def texts() -> tuple[list[str], list[str]]:
    """Questions and passages of the calibration pools, and some that truncate or are odd."""
    _, pools = read_calibration()
    questions = [q for q, passages in pools[:4] for _ in passages] + ["x" * 3000, "", "Ünïcödé 東京 🙂"]
    passages = [p for _, passages in pools[:4] for p in passages] + ["y " * 2000, "short", "naïve café " * 300]
    return questions, passages


def test_the_recorded_tokenizer_tokenizes_as_the_library_does(tmp_path):
    questions, passages = texts()
    cross = CrossEncoder(str(RERANKER)).tokenizer
    bi = SentenceTransformer(resolve_model(EMBEDDER))
    for name, tokenizer, limit in (("cross", cross, 256), ("bi", bi.tokenizer, bi.max_seq_length)):
        files = {"copy": tmp_path / name / "model.onnx"}
        files["copy"].parent.mkdir()
        write_record(files, tokenizer, limit)
        _, recorded = read_record(files)
        if name == "cross":
            assert recorded(questions, passages, truncation=True, max_length=limit) == dict(
                tokenizer(questions, passages, truncation=True, max_length=limit))
        else:
            assert recorded(passages, truncation=True, max_length=limit) == dict(
                tokenizer(passages, truncation=True, max_length=limit))


def test_a_process_that_finds_the_record_never_imports_torch_and_computes_the_same(bi_encoder, cross_encoder):
    # The fixtures loaded both encoders as the app does, which records their copies where `auto` chose copies.
    if not {bi_encoder.format, cross_encoder.format} <= set(SHOWN.values()):
        pytest.skip(f"auto chose torch for an encoder on this CPU ({bi_encoder.format}, {cross_encoder.format})")
    done = subprocess.run([sys.executable, "-c", LOAD_AND_SCORE], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    fresh = json.loads(done.stdout.splitlines()[-1])
    assert fresh["imported"] == [], "run from the record, without the libraries"
    assert fresh["formats"] == [bi_encoder.format, cross_encoder.format]
    assert fresh["scores"] == cross_encoder.score([(QUESTION, p) for p in PASSAGES])
    assert fresh["vectors"] == bi_encoder.embed_documents([QUESTION, *PASSAGES])


def test_a_record_from_other_library_versions_or_without_its_tokenizer_is_not_used(tmp_path, monkeypatch):
    tokenizer = CrossEncoder(str(RERANKER)).tokenizer
    files = {"copy": tmp_path / "model.onnx"}
    write_record(files, tokenizer, 256, activation="sigmoid")
    assert read_record(files)[0] == RunRecord(256, list(tokenizer.model_input_names), tokenizer.pad_token_id,
                                              activation="sigmoid", libraries=copy_record.library_versions())
    monkeypatch.setattr(copy_record, "library_versions", lambda: {"sentence-transformers": "0.0"})
    assert read_record(files) is None, "written by other versions of the libraries"
    monkeypatch.undo()
    (tmp_path / copy_record.TOKENIZER).unlink()
    assert read_record(files) is None


def test_a_tokenizer_without_a_rust_one_behind_it_is_not_recorded(tmp_path):
    class PythonOnly:
        model_input_names, pad_token_id = ["input_ids"], 0

    files = {"copy": tmp_path / "model.onnx"}
    write_record(files, PythonOnly(), 256, dimension=384)
    assert list(tmp_path.iterdir()) == [] and read_record(files) is None


def test_a_record_that_cannot_be_written_leaves_no_temporary_file_behind(tmp_path):
    tokenizer = CrossEncoder(str(RERANKER)).tokenizer
    files = {"copy": tmp_path / "model.onnx"}
    (tmp_path / copy_record.RECORD).mkdir()  # a folder where the record goes: writing works, replacing fails
    write_record(files, tokenizer, 256, activation="sigmoid")
    assert read_record(files) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [copy_record.RECORD, copy_record.TOKENIZER]
