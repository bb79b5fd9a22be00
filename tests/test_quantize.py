"""Number formats: which one an encoder runs in, the int8 copies' cache and provenance (with the OpenVINO float32
copy beside them), the fallback to torch, and int8 keeping float32's rankings. Real models and real OpenVINO builds
throughout (small calibration sets where the test is about the cache, the full one where it is about the rankings)."""

from __future__ import annotations

import gzip
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification

from rag.encoders import onnx_copy, quantize
from rag.encoders.int8_build import read_calibration, top3
from rag.encoders.models import resolve_model
from rag.encoders.quantize import (FLOAT32_COPY, ORT_FLOAT32, ORT_INT8, Encoder, EncoderCopies, choose_copy,
                                   choose_format, cpu_kind, float32_copy, load_int8, open_named_copy, source_digest)
from rag.retrieval.rerank import SentenceTransformerCrossEncoder

from tests.conftest import EMBEDDER, RERANKER

needs_int8 = pytest.mark.skipif(bool(quantize.missing_int8_packages()), reason="openvino/nncf not installed")


def small_calibration(folder: Path, pairs: int = 6, pools: int = 2) -> Path:
    """A few entries of the shipped calibration file: enough for a real build, quick to build."""
    entries = [json.loads(line) for line in gzip.open(quantize.CALIBRATION, "rt", encoding="utf-8")]
    check = [e for e in entries if e["use"] == "check"][:pools]
    calibrate = [e for e in entries if e["use"] == "calibration"][: pairs // 3]
    path = folder / "calibration.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for e in check + calibrate:
            out.write(json.dumps(e) + "\n")
    return path


def shallow_copy(model: str, folder: Path, layers: int = 2) -> Path:
    """The cross-encoder `model` cut to its first `layers` layers, saved in `folder`: a real model of the same
    architecture and tokenizer, whose copies build in half the time. For tests about building and caching the
    copies; the tests about rankings use the whole model."""
    shutil.copytree(model, folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    cut = AutoModelForSequenceClassification.from_pretrained(str(folder))
    cut.bert.encoder.layer = cut.bert.encoder.layer[:layers]
    cut.config.num_hidden_layers = layers
    cut.save_pretrained(str(folder))  # replaces config.json and model.safetensors
    return folder


def test_cpu_kinds_name_what_the_formats_depend_on():
    assert cpu_kind({"avx", "avx2", "fma"}) == "avx2"
    assert cpu_kind({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"}) == "avx512-bf16+vnni"
    assert cpu_kind({"avx2", "avx_vnni"}) == "avx-vnni"
    assert cpu_kind(set()) == "other"


def test_torch_formats_never_try_int8_and_unknown_ones_are_refused():
    assert choose_format("float32", "cpu", "cross-encoder") == quantize.FormatChoice("float32", int8=False)
    assert choose_format("bfloat16", "cpu", "bi-encoder").int8 is False
    assert choose_format("int8", "cuda", "bi-encoder").int8 is False
    assert "CPU only" in choose_format("int8", "cuda", "bi-encoder").notice
    with pytest.raises(ValueError, match="unknown number format"):
        choose_format("int4", "cpu", "bi-encoder")


def test_without_the_int8_packages_int8_falls_back_to_torch_with_a_notice(monkeypatch, tmp_path):
    monkeypatch.setattr(quantize, "INT8_PACKAGES", ("openvino", "no_such_package_for_int8"))
    assert choose_format("auto", "cpu", "cross-encoder") == quantize.FormatChoice("auto", int8=False)
    model = SentenceTransformerCrossEncoder(str(RERANKER), precision="int8", quantized_cache=tmp_path)
    assert model.format in ("float32", "bfloat16")
    assert "no_such_package_for_int8" in model.notice and "requirements.txt" in model.notice
    assert not any(tmp_path.iterdir()), "nothing is built without the packages"
    scores = model.score([("what do mitochondria make?", "Mitochondria make ATP."), ("what do mitochondria make?",
                                                                                     "Paris is in France.")])
    assert scores[0] > scores[1]


def copies(*names: str) -> dict:
    return {name: (lambda: print) for name in names}


def checks(**passed: bool) -> dict:
    return {"checks": {name.replace("_", "-"): {"passed": ok} for name, ok in passed.items()}}


def test_auto_takes_int8_only_where_it_passed_and_was_timed_fastest():
    passed = checks(int8=True)
    assert EncoderCopies(copies("int8"), {**passed, "timings_ms": {"float32": 900, "bfloat16": 450, "int8": 200}}
                         ).faster("int8")
    assert not EncoderCopies(copies("int8"), {**passed, "timings_ms": {"float32": 900, "bfloat16": 150, "int8": 200}}
                             ).faster("int8")
    assert not EncoderCopies({}, {**passed, "timings_ms": {"float32": 900, "int8": 200}}).faster("int8"), "not on disk"
    failed = EncoderCopies(copies("int8"), {**checks(int8=False), "timings_ms": {"float32": 900, "int8": 9}})
    assert not failed.usable("int8") and not failed.faster("int8")


def test_auto_takes_the_fastest_openvino_copy_that_kept_the_rankings_and_beat_torch():
    def loaded(int8_ms, copy_ms, copy_passed=True, int8_passed=True):
        return EncoderCopies(copies("int8", FLOAT32_COPY),
                             {**checks(int8=int8_passed, openvino_float32=copy_passed),
                              "timings_ms": {"float32": 1400, "int8": int8_ms, FLOAT32_COPY: copy_ms}})

    assert choose_copy("auto", loaded(int8_ms=300, copy_ms=1200)) == "int8", "a VNNI CPU: int8 is fastest"
    assert choose_copy("auto", loaded(int8_ms=1500, copy_ms=1250)) == FLOAT32_COPY, "AVX2: int8 is slower"
    assert choose_copy("auto", loaded(int8_ms=1500, copy_ms=1450)) == "torch", "the copy is no faster than torch"
    assert choose_copy("auto", loaded(int8_ms=1500, copy_ms=1250, copy_passed=False)) == "torch"
    assert choose_copy("auto", loaded(int8_ms=300, copy_ms=1250, int8_passed=False)) == FLOAT32_COPY
    assert choose_copy("auto", loaded(int8_ms=1300, copy_ms=1250)) == FLOAT32_COPY, "both beat torch: the faster"
    assert choose_copy("auto", loaded(int8_ms=1200, copy_ms=1250)) == "int8"
    assert choose_copy("float32", loaded(int8_ms=300, copy_ms=1250)) == "torch", "a torch format asked for"
    assert choose_copy("int8", loaded(int8_ms=1500, copy_ms=1250)) == "int8", "asked for, int8 it is"
    assert choose_copy("int8", loaded(int8_ms=300, copy_ms=1250, int8_passed=False)) == "torch"
    assert choose_copy("auto", EncoderCopies(copies("int8"), {**checks(int8=True),
                                                              "timings_ms": {"float32": 9, "int8": 20}})) == "torch"


def test_the_onnx_runtime_int8_bi_encoder_is_taken_where_it_kept_the_rankings_and_was_fastest():
    def loaded(ort_ms, ort_passed=True, int8_passed=True, int8_ms=1500, kind="bi-encoder"):
        return EncoderCopies(copies(*quantize.COPIES),
                             {"kind": kind, **checks(int8=int8_passed, openvino_float32=True,
                                                     onnxruntime_int8=ort_passed, onnxruntime_float32=True),
                              "timings_ms": {"float32": 1400, "int8": int8_ms, FLOAT32_COPY: 1250, ORT_FLOAT32: 1100,
                                             ORT_INT8: ort_ms}})

    assert choose_copy("auto", loaded(ort_ms=800)) == ORT_INT8, "AVX2: ONNX Runtime's int8 beats the float32 copies"
    assert choose_copy("auto", loaded(ort_ms=800, ort_passed=False)) == ORT_FLOAT32, "it moved the rankings"
    assert choose_copy("auto", loaded(ort_ms=800, int8_ms=300)) == "int8", "VNNI: OpenVINO's int8 is faster"
    assert choose_copy("int8", loaded(ort_ms=800)) == ORT_INT8, "int8 asked for: the faster int8 copy that passed"
    assert choose_copy("int8", loaded(ort_ms=800, int8_passed=False)) == ORT_INT8
    assert choose_copy("int8", loaded(ort_ms=800, ort_passed=False)) == "int8"
    assert choose_copy("int8", loaded(ort_ms=800, ort_passed=False, int8_passed=False)) == "torch"
    assert choose_copy("bfloat16", loaded(ort_ms=800)) == "torch"
    # The cross-encoder's passed its build check but not SciFact's (26 of 30 top-3 chunks): never taken.
    assert choose_copy("auto", loaded(ort_ms=800, kind="cross-encoder")) == ORT_FLOAT32
    assert choose_copy("int8", loaded(ort_ms=800, kind="cross-encoder")) == "int8"


def test_pair_scores_beside_an_int8_copy_come_from_the_faster_float32_copy_that_kept_the_rankings():
    def loaded(ort_float32_ms, ort_float32_passed=True):
        return EncoderCopies(copies(*quantize.COPIES),
                             {**checks(openvino_float32=True, onnxruntime_float32=ort_float32_passed),
                              "timings_ms": {FLOAT32_COPY: 1250, ORT_FLOAT32: ort_float32_ms}})

    assert float32_copy(loaded(1100)) == ORT_FLOAT32
    assert float32_copy(loaded(1300)) == FLOAT32_COPY
    assert float32_copy(loaded(1100, ort_float32_passed=False)) == FLOAT32_COPY
    assert float32_copy(EncoderCopies({}, {})) is None


@needs_int8
def test_the_int8_copy_is_built_once_with_provenance_and_rebuilt_when_the_source_changes(monkeypatch, tmp_path):
    monkeypatch.setattr(quantize, "CALIBRATION", small_calibration(tmp_path))
    source = shallow_copy(RERANKER, tmp_path / "model")
    cache = tmp_path / "cache"
    tokenizer = CrossEncoder(str(source)).tokenizer

    first = load_int8("cross-encoder", "my-reranker", str(source), cache, tokenizer, 256)
    assert first.notice is None or "not used" in first.notice, first.notice
    p = first.provenance
    assert p["source_model"] == "my-reranker" and p["source_sha256"] == source_digest(source)
    assert p["format"].startswith("int8 static") and p["calibration"]["pairs"] == 6
    assert p["checks"]["int8"]["top3_total"] == 6 and set(p["timings_ms"]) >= {"float32", "int8"}
    folders = list(cache.glob("cross-encoder-*"))
    assert len(folders) == 1 and (folders[0] / "model.xml").is_file()
    # Beside it, the unquantized OpenVINO copy: checked, timed, and computing what torch float32 computes.
    assert (folders[0] / "model-float32.xml").is_file() and FLOAT32_COPY in p["timings_ms"]
    assert p["checks"][FLOAT32_COPY]["top3_total"] == 6
    # And ONNX Runtime's int8 and float32 copies, checked and timed beside them.
    for copy, file in ((ORT_INT8, onnx_copy.FILE), (ORT_FLOAT32, onnx_copy.FLOAT32_FILE)):
        assert (folders[0] / file).is_file() and copy in p["timings_ms"], p.get("onnxruntime")
        assert p["checks"][copy]["top3_total"] == 6
    assert p["onnxruntime"]["build_seconds"] > 0
    features = Encoder("cross-encoder", tokenizer, 256).padded([("what do mitochondria make?", "They make ATP."),
                                                               ("what do mitochondria make?", "Paris is nice.")])
    with torch.inference_mode():
        reference = AutoModelForSequenceClassification.from_pretrained(str(source)).eval()(
            **{k: torch.from_numpy(v) for k, v in features.items()}).logits.numpy()
    for copy in (FLOAT32_COPY, ORT_FLOAT32):  # the float32 copies compute what torch float32 computes
        scores = np.asarray(first.openers[copy]()(features), dtype=np.float32)
        assert np.allclose(scores, reference, atol=1e-3), (copy, scores, reference)

    again = load_int8("cross-encoder", "my-reranker", str(source), cache, tokenizer, 256)
    assert again.provenance["built_at"] == p["built_at"], "an unchanged source is not rebuilt"

    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "note": "fine-tuned again"}))
    changed = load_int8("cross-encoder", "my-reranker", str(source), cache, tokenizer, 256)
    assert changed.provenance["source_sha256"] == source_digest(source) != p["source_sha256"]
    assert len(list(cache.glob("cross-encoder-*"))) == 2


@needs_int8
@pytest.mark.parametrize("copy", quantize.COPIES)
def test_a_bi_encoder_on_a_copy_keeps_no_float_weights_and_still_knows_its_dimension_and_limit(monkeypatch, copy):
    from rag.encoders import copy_record
    from rag.retrieval.embeddings import BiEncoder, BiEncoderPairScorer

    # Which copy `auto` takes depends on the CPU's timings (and int8's check on it): here the test chooses.
    monkeypatch.setattr(quantize, "choose_copy", lambda precision, loaded: copy)
    shown = {"int8": "int8 (OpenVINO, static)", FLOAT32_COPY: "float32 (OpenVINO)",
             ORT_INT8: "int8 (ONNX Runtime, dynamic)", ORT_FLOAT32: "float32 (ONNX Runtime)"}
    pairs = [("How long does a refund take?", "A refund takes 14 days."),
             ("How long does a refund take?", "Warsaw is in Poland.")]
    with monkeypatch.context() as unrecorded:  # loaded through sentence-transformers, which records the copies
        unrecorded.setattr(copy_record, "read_record", lambda files: None)
        through_library = BiEncoder(EMBEDDER, precision="auto")
    assert {t.device.type for t in through_library._model.parameters()} == {"meta"}
    from_record = BiEncoder(EMBEDDER, precision="auto")
    assert from_record._model is None, "run from the record: no torch model at all"
    for model in (through_library, from_record):
        assert model.format == shown[copy], model.notice
        assert (model.dimension, model.max_tokens) == (384, 256)
        scores = BiEncoderPairScorer(model).score(pairs)
        assert scores[0] > scores[1]
    assert from_record.embed_documents([q for q, _ in pairs]) == through_library.embed_documents([q for q, _ in pairs])
    # Pair scores meet a fixed threshold (answer attribution): they are float32's whatever the copy searching uses.
    assert scores == pytest.approx(BiEncoderPairScorer(BiEncoder(EMBEDDER, precision="float32")).score(pairs),
                                   abs=2e-3)


@needs_int8
def test_a_bi_encoder_searching_in_bfloat16_scores_pairs_in_float32(monkeypatch):
    """Where `auto` finds torch's bfloat16 fastest (a CPU with native bf16), the search runs in bfloat16, and the
    pair scores that meet answer attribution's threshold (measured in float32) come from a float32 copy."""
    import rag.retrieval.embeddings
    from rag.retrieval.embeddings import BiEncoder, BiEncoderPairScorer

    pairs = [("How long does a refund take?", "A refund takes 14 days."),
             ("Which city is the capital of Poland?", "Warsaw is in Poland, on the Vistula.")]
    reference = BiEncoder(EMBEDDER, precision="float32")
    float32_scores, float32_vector = BiEncoderPairScorer(reference).score(pairs), reference.embed_query(pairs[0][1])
    monkeypatch.setattr(quantize, "choose_copy", lambda precision, loaded: "torch")
    monkeypatch.setattr(rag.retrieval.embeddings, "torch_dtype", lambda precision, device: torch.bfloat16)
    model = BiEncoder(EMBEDDER, precision="auto")
    assert model.format == "bfloat16"
    scores = BiEncoderPairScorer(model).score(pairs)
    assert scores == pytest.approx(float32_scores, abs=1e-4), "float32's, not bfloat16's (about 1e-3 off)"
    assert model.embed_query(pairs[0][1]) != pytest.approx(float32_vector, abs=1e-4), "the search is bfloat16's"


@needs_int8
def test_a_failed_build_leaves_the_encoder_in_torch_with_a_notice(tmp_path):
    from rag.retrieval.embeddings import BiEncoder

    # A cross-encoder folder is no mean-pooling bi-encoder: the int8 build refuses it, the model still loads.
    model = BiEncoder(str(RERANKER), precision="int8", quantized_cache=tmp_path)
    assert model.format in ("float32", "bfloat16")
    assert "could not be built" in model.notice and "mean pooling" in model.notice
    assert len(model.embed_query("a question")) == model.dimension
    assert not [p for p in tmp_path.iterdir() if p.is_dir()], "no half-built copies folder stays in the cache"


@needs_int8
def test_int8_ranks_pools_as_float32_does():
    """On pools of 20 SciFact chunks the calibration never saw: at least 29 of 30 top-3 chunks are float32's.

    The copy is the one the app uses (the default cache, as the other tests' `auto` encoders load it)."""
    int8 = SentenceTransformerCrossEncoder(str(RERANKER), precision="int8")
    assert int8.format == "int8 (OpenVINO, static)", int8.notice
    # The int8 copy computes every score: no float weights are kept beside it.
    assert int8._torch_model is None or {t.device.type for t in int8._torch_model.parameters()} == {"meta"}
    float32 = SentenceTransformerCrossEncoder(str(RERANKER), precision="float32")
    _, pools = read_calibration()
    same, differences = 0, []
    for question, passages in pools[:10]:
        a = int8.score([(question, p) for p in passages])
        b = float32.score([(question, p) for p in passages])
        same += len(set(top3(a)) & set(top3(b)))
        differences += [abs(x - y) for x, y in zip(a, b)]
    assert same >= 29
    # A copy that lost the attention mask or a layer scores far off everywhere, not just near ties.
    assert statistics.fmean(differences) < 0.05, statistics.fmean(differences)


@needs_int8
def test_the_onnx_runtime_copy_scores_a_pair_the_same_whatever_it_is_batched_with():
    """Dynamic int8 takes activation ranges at run time: computed in one batch, a long outlier beside a pair would
    change the pair's score. The copy computes each sequence alone, so it does not."""
    _, pools = read_calibration()
    question, passages = pools[0]
    model = SentenceTransformerCrossEncoder(str(RERANKER), precision="float32")
    loaded = load_int8("cross-encoder", str(RERANKER), resolve_model(str(RERANKER)), None, model._tokenizer, 256)
    forward, name = open_named_copy(ORT_INT8, loaded)
    encoder = Encoder("cross-encoder", model._tokenizer, 256)
    pair = (question, passages[3])
    alone = forward(encoder.padded([pair]))[0, 0]
    beside = forward(encoder.padded([pair, (question, " ".join(passages)), (question, "no.")]))
    assert beside[0, 0] == alone and beside.shape == (3, 1)
    assert name == quantize.ORT_INT8_NAME


@needs_int8
@pytest.mark.parametrize("copy", [ORT_INT8, ORT_FLOAT32])
def test_the_onnx_runtime_copy_scores_the_same_with_one_worker_or_one_per_core(copy):
    """Several sequences at once, each on its own core, come back in the order given and as one worker computes
    them (each sequence is still computed alone)."""
    _, pools = read_calibration()
    question, passages = pools[1]
    model = SentenceTransformerCrossEncoder(str(RERANKER), precision="float32")
    loaded = load_int8("cross-encoder", str(RERANKER), resolve_model(str(RERANKER)), None, model._tokenizer, 256)
    encoder = Encoder("cross-encoder", model._tokenizer, 256)
    pairs = [(question, p) for p in passages[:6]] + [(question, "no.")]
    features = encoder.padded(pairs)
    one_worker = onnx_copy.open_session(loaded.files[copy], workers=1)
    several = onnx_copy.open_session(loaded.files[copy], workers=3)(features)
    assert several.shape == (len(pairs), 1)
    assert np.array_equal(one_worker(features), several)
    alone = [one_worker(encoder.padded([pair]))[0, 0] for pair in pairs]
    assert several[:, 0].tolist() == alone, "each score is its own pair's, in the order given"
    assert len(set(alone)) == len(pairs)


def test_float32_scores_are_the_libraries_own_with_one_tokenization_and_no_repeats(monkeypatch):
    model = SentenceTransformerCrossEncoder(str(RERANKER), precision="float32", remember=100)
    _, pools = read_calibration()
    question, passages = pools[0]
    pairs = [(question, p) for p in passages[:8]] + [(question, "short.")]
    expected = CrossEncoder(str(RERANKER)).predict([list(p) for p in pairs])
    tokenized, forwards = [], []
    tokenizer, forward = model._tokenizer, model._forward

    class CountingTokenizer:  # the real tokenizer, counting the texts it is given
        def __call__(self, *args, **kwargs):
            tokenized.append(len(args[0]))
            return tokenizer(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(tokenizer, name)

    monkeypatch.setattr(model, "_tokenizer", CountingTokenizer())
    monkeypatch.setattr(model, "_forward", lambda feats: forwards.append(feats["input_ids"].shape) or forward(feats))
    got = model.score(pairs)
    assert got == pytest.approx(list(expected), abs=1e-4)
    assert tokenized == [len(pairs)], "each pair is tokenized once, all in one call"
    longest = max(len(tokenizer(q, p, truncation=True, max_length=256)["input_ids"]) for q, p in pairs)
    assert all(rows * width <= 1.1 * rows * longest for rows, width in forwards)
    assert any(width < longest for _, width in forwards), "the short pair is not padded to the longest"
    # Chat and Compare asking about the same pool: the pairs already scored are not computed again.
    forwards.clear()
    assert model.score(pairs[:3]) == got[:3]
    assert forwards == []
