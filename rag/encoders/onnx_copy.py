"""The encoders' ONNX Runtime copies: float32, and int8, beside OpenVINO's int8 and float32 copies.

Why a second int8: on a CPU without VNNI (AVX2 only), OpenVINO's int8 layers run oneDNN's generic int8 GEMM and are
slower than float32, while ONNX Runtime's own int8 kernels (MLAS) multiply about 1.75x as fast as float32 there
(`bench/floor.py` measures both rates). The model is exported to ONNX and its BERT layers fused into ONNX Runtime's
operators (Attention, BiasGelu); that graph is the float32 copy (`FLOAT32_FILE`), which on AVX2 also computes
faster than OpenVINO's float32. Quantized *dynamically* it is the int8 copy (`FILE`): weights int8 per output
channel, each activation's range taken at run time from the sequence computed (`open_session` runs one at a time).
It needs no calibration set. Dynamic int8 is known to move rankings, so it is held to the same check as every copy
(`rag.encoders.int8_build`: 29 of 30 top-3 chunks on pools it never saw) and `auto` takes it only where it passed and
was the fastest on this CPU; and only for the kinds of encoder in `quantize.ORT_INT8_KINDS`, those for which it also
kept the rankings on SciFact.

Residual adds and layer norms stay two operators (Add, LayerNormalization): ONNX Runtime's fused
SkipLayerNormalization computed them about twice as slowly here (3.2 against 1.5 ms per sequence of 230 tokens in
the int8 bi-encoder), so the build does not fuse them and the session does not fuse them back.

Building needs `onnx` (export and quantization tools); running needs `onnxruntime` only. A failed build is recorded
in the copy's provenance and leaves the OpenVINO copies in use.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .quantize import Forward

FILE = "model-ort-int8.onnx"
FLOAT32_FILE = "model-ort-float32.onnx"
UNFUSED = ["SkipLayerNormFusion"]  # the session's own fusion that would undo the build's choice (module docstring)


def build(model, source: str, folder: Path, example: dict[str, np.ndarray]) -> Path:
    """Export `model` (torch, float32, eager attention), fuse, quantize; write `folder/FLOAT32_FILE` and
    `folder/FILE`, each complete or not at all."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    names = list(example)

    class FirstOutput(torch.nn.Module):  # logits, or a bi-encoder's token vectors, from positional inputs
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs)))[0]

    config = json.loads((Path(source) / "config.json").read_text())
    with tempfile.TemporaryDirectory(dir=folder) as work:
        exported, fused, partial = Path(work) / "exported.onnx", Path(work) / "fused.onnx", Path(work) / FILE
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in torch 2.13, but only its graphs match ONNX Runtime's BERT
            # fusions (the torch.export-based one leaves attention unfused, which costs the gain). torch is pinned;
            # if a later torch drops it, the build fails here and the OpenVINO copies stay in use.
            warnings.simplefilter("ignore")
            torch.onnx.export(FirstOutput().eval(), tuple(torch.from_numpy(example[n]) for n in names),
                              str(exported), input_names=names, output_names=["output"], opset_version=17,
                              dynamo=False, dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names},
                                                          "output": {0: "batch"}})
        fusions = FusionOptions("bert")
        fusions.enable_skip_layer_norm = False
        optimized = optimizer.optimize_model(str(exported), model_type="bert",
                                             num_heads=config["num_attention_heads"],
                                             hidden_size=config["hidden_size"], optimization_options=fusions)
        optimized.save_model_to_file(str(fused))
        logging.disable(logging.WARNING)  # it advises, on the root logger, a pre-processing step made for CNNs
        try:
            quantize_dynamic(str(fused), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": 1})  # FLOAT: the fused operators' outputs
        finally:
            logging.disable(logging.NOTSET)
        os.replace(fused, folder / FLOAT32_FILE)
        os.replace(partial, folder / FILE)
    return folder / FILE


def open_session(path: Path, workers: int | None = None) -> Forward:
    """An ONNX Runtime session on the copy, as a forward over padded features.

    It runs one sequence at a time, its padding cut off. Dynamic quantization takes each activation's range from
    the whole batch it computes, so in a batch a pair's score would depend on which pairs share it (one long outlier
    coarsens every other row): alone, a pair's score is its own, whatever else is scored with it. Alone is also no
    slower (no padding computed: the build times it so).

    `workers` sequences are computed at once (by default one per core this process may use), each by one thread
    on one core; with one worker, each sequence is split across all cores instead, which computed 6-17% more
    slowly per sequence here (AVX2, 2 cores: `bench/threads.py`). Either way each sequence is computed alone and
    whole, so its output does not depend on the others, nor on the number of workers."""
    import onnxruntime as ort

    workers = workers or usable_cores()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # its warnings about unused initializers are not the user's concern
    if workers > 1:
        options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=UNFUSED)
    names = {i.name for i in session.get_inputs()}
    pool = ThreadPoolExecutor(workers, thread_name_prefix="onnxruntime") if workers > 1 else None

    def forward(features: dict[str, np.ndarray]) -> np.ndarray:
        inputs = {k: v for k, v in features.items() if k in names}
        lengths = features["attention_mask"].sum(axis=1)

        def run(i: int) -> np.ndarray:
            return session.run(None, {k: v[i: i + 1, : lengths[i]] for k, v in inputs.items()})[0]

        longest_first = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # so that no thread ends last alone
        computed = dict(zip(longest_first, pool.map(run, longest_first) if pool and len(lengths) > 1
                            else map(run, longest_first)))
        rows = [computed[i] for i in range(len(lengths))]
        if rows[0].ndim == 2:  # one vector per sequence: logits
            return np.concatenate(rows)
        out = np.zeros((len(rows), features["attention_mask"].shape[1], rows[0].shape[-1]), dtype=rows[0].dtype)
        for i, row in enumerate(rows):  # token vectors, padded back; pooling reads only the unmasked ones
            out[i, : row.shape[1]] = row[0]
        return out
    return forward


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the system reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
