"""Building an encoder's copies (OpenVINO int8 and float32, ONNX Runtime int8 and float32): convert, quantize,
check against torch, time.

`rag.encoders.quantize.load_int8` calls `build` once per model and source hash, under a file lock; everything here runs
only then (and in the benchmarks and tests that read the calibration file). The result is the folder's
`model.xml` (int8), `model-float32.xml`, ONNX Runtime's two files and `provenance.json` (what was built from what,
each copy's check, the timings).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import onnx_copy, quantize
from .quantize import (COPIES, FLOAT32_COPY, MIN_TOP3_AGREEMENT, ORT_FLOAT32, ORT_INT8, Encoder, Forward, Kind,
                       _compile, cpu_kind)


def read_calibration() -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """(calibration pairs, check pools) from `CALIBRATION`."""
    pairs, pools = [], []
    with gzip.open(quantize.CALIBRATION, "rt", encoding="utf-8") as lines:
        for item in map(json.loads, lines):
            if item["use"] == "check":
                pools.append((item["question"], item["passages"]))
            else:
                pairs += [(item["question"], p) for p in item["passages"]]
    return pairs, pools


def _torch_model(kind: Kind, source: str, **options):
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    if kind == "cross-encoder":
        return AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32, **options).eval()
    _check_mean_pooling(Path(source))
    return AutoModel.from_pretrained(source, dtype=torch.float32, **options).eval()


def _check_mean_pooling(folder: Path) -> None:
    pooling = next(folder.glob("*Pooling/config.json"), None)
    config = json.loads(pooling.read_text()) if pooling else {}
    if not config.get("pooling_mode_mean_tokens") or any(v for k, v in config.items()
                                                       if k.startswith("pooling_mode_") and "mean" not in k):
        raise ValueError("int8 supports bi-encoders with mean pooling only")


def _torch_forward(model) -> Forward:
    import torch

    def forward(features: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(**{k: torch.from_numpy(v) for k, v in features.items()})[0].float().numpy()
    return forward


def build(kind: Kind, source: str, folder: Path, tokenizer, max_length: int, wanted: dict) -> dict:
    """Convert, quantize on the calibration pairs, check against float32 and time the formats; write provenance."""
    import nncf
    import openvino as ov
    import torch

    from .models import torch_dtype

    import logging

    nncf.set_log_level(logging.ERROR)
    started = time.perf_counter()
    encoder = Encoder(kind, tokenizer, max_length)
    pairs, pools = read_calibration()
    model = _torch_model(kind, source)
    # The example is a padded batch (a long and a short input), so that tracing keeps the attention mask's path.
    example = encoder.padded([pairs[0], (pairs[0][0], "short")] if kind == "cross-encoder" else [pairs[0][1], "short"])
    with warnings.catch_warnings():  # tracing warns about Python-side branches; the check below is what counts
        warnings.simplefilter("ignore")
        converted = ov.convert_model(model, example_input={k: torch.from_numpy(v) for k, v in example.items()})
    ov.save_model(converted, str(folder / "model-float32.xml"), compress_to_fp16=False)
    inputs = pairs if kind == "cross-encoder" else list(dict.fromkeys(t for pair in pairs for t in pair))
    calibration = [encoder.padded([item]) for item in inputs]  # one input per sample: no padding in the ranges
    # NNCF draws progress bars on stdout, which `--json` commands keep for their output: they go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(converted, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration))
    ov.save_model(quantized, str(folder / "model.xml"), compress_to_fp16=False)
    build_s = time.perf_counter() - started
    onnxruntime = _build_onnxruntime(kind, source, folder, example)

    # The check: each copy against torch float32 on pools the calibration never saw; and each format timed on them.
    int8 = _compile(folder / "model.xml", folder.parent / "openvino-cache")
    forwards = {"float32": _torch_forward(model), "int8": int8,
                FLOAT32_COPY: _compile(folder / "model-float32.xml", folder.parent / "openvino-cache")}
    if "error" not in onnxruntime:
        forwards[ORT_FLOAT32] = onnx_copy.open_session(folder / onnx_copy.FLOAT32_FILE)
        forwards[ORT_INT8] = onnx_copy.open_session(folder / onnx_copy.FILE)
    if torch_dtype("auto", "cpu") == torch.bfloat16:
        forwards["bfloat16"] = _torch_forward(_torch_model(kind, source).to(torch.bfloat16))
    scores: dict[str, list[list[float]]] = {fmt: [] for fmt in forwards}
    times: dict[str, list[float]] = {fmt: [] for fmt in forwards}
    for forward in forwards.values():
        encoder.scores(forward, pools[0])  # warm-up
    names = list(forwards)
    for k, pool in enumerate(pools):  # interleaved, the order rotated, so that a busy moment hits every format alike
        for fmt in names[k % len(names):] + names[: k % len(names)]:
            start = time.perf_counter()
            scores[fmt].append(encoder.scores(forwards[fmt], pool))
            times[fmt].append((time.perf_counter() - start) * 1000)
    timings = {fmt: round(statistics.median(t), 1) for fmt, t in times.items()}

    def agreement(fmt: str) -> int:
        return sum(len(set(top3(a)) & set(top3(b))) for a, b in zip(scores[fmt], scores["float32"]))

    def check(copy: str) -> dict:
        same, total = agreement(copy), 3 * len(pools)
        return {"top3_same": same, "top3_total": total, "passed": same >= MIN_TOP3_AGREEMENT * total}

    checks = {copy: check(copy) for copy in forwards if copy in COPIES}
    import importlib.metadata as md

    provenance = {
        **wanted, "kind": kind, "format": "int8 static (OpenVINO IR, NNCF mixed preset)",
        "calibration": {"file": quantize.CALIBRATION.name, "pairs": len(pairs), "check_pools": len(pools),
                        "what": "SciFact test claims 181-300, their float32 bi-encoder pools (bench/calibration.py)"},
        "libraries": {p: md.version(p) for p in ("openvino", "nncf", "torch", "transformers")
                      + (("onnxruntime", "onnx") if "error" not in onnxruntime else ())},
        "cpu": cpu_kind(), "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(build_s, 1),
        "checks": checks,
        "timings_ms": timings,
        "onnxruntime": onnxruntime,
    }
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=1))
    return provenance


def _build_onnxruntime(kind: Kind, source: str, folder: Path, example: dict[str, np.ndarray]) -> dict:
    """The ONNX Runtime copies (rag/encoders/onnx_copy.py): what they are and their build time, or why they were not built."""
    started = time.perf_counter()
    try:
        onnx_copy.build(_torch_model(kind, source, attn_implementation="eager"), source, folder, example)
    except Exception as exc:  # optional: without it the OpenVINO copies are what `auto` chooses from
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
    return {"format": {ORT_INT8: "int8 dynamic (ONNX Runtime, weights per channel, BERT operators fused)",
                       ORT_FLOAT32: "float32 (ONNX Runtime, BERT operators fused)"},
            "files": {ORT_INT8: onnx_copy.FILE, ORT_FLOAT32: onnx_copy.FLOAT32_FILE},
            "build_seconds": round(time.perf_counter() - started, 1)}


def top3(scores: Sequence[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])[:3]
