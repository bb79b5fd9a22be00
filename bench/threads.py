"""How the ONNX Runtime copies should use the cores: one sequence at a time split across all of them, or one
sequence per core, several at once (`rag.encoders.onnx_copy.open_session`'s `workers`). Every sequence is computed alone
either way, so the outputs must be identical; the benchmark checks that, then times both, alternating.

- cross-encoder: the ten check pools of `rag/encoders/data/calibration.jsonl.gz` (SciFact claims 181-190, each with its
20
  nearest chunks), one pool per call, as the app reranks;
- bi-encoder: the first `--docs` SciFact abstracts split as the app splits them, 32 chunks per call, as ingest
  embeds them.

Run: `scripts/run-bench.sh threads [--docs 150] [--rounds 4] [--json FILE]`. It uses the copies built for the
configured bi-encoder and the test cross-encoder (building them first if needed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT, cpu_description, split_as_the_app_does  # noqa: E402
from rag.encoders import onnx_copy  # noqa: E402
from rag.encoders.int8_build import read_calibration  # noqa: E402
from rag.encoders.models import resolve_model  # noqa: E402
from rag.encoders.quantize import ORT_FLOAT32, ORT_INT8, Encoder, load_int8  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.settings import Settings  # noqa: E402


def calls(kind: str, encoder: Encoder, docs: int, settings: Settings) -> list[dict[str, np.ndarray]]:
    """The padded inputs of each call the app makes: a pool to rerank, or a batch of chunks to embed."""
    if kind == "cross-encoder":
        _, pools = read_calibration()
        return [encoder.padded([(question, passage) for passage in passages]) for question, passages in pools]
    texts = [c.page_content for c in split_as_the_app_does(load_beir(SCIFACT).documents[:docs], settings)]
    return [feats for _, feats in encoder.features(texts, 32)]


def compare(path: Path, inputs: list[dict[str, np.ndarray]], rounds: int) -> dict:
    """ms per call with one worker and with one per core, alternating which goes first; and the largest
    difference between their outputs."""
    forwards = {"one sequence across all cores": onnx_copy.open_session(path, workers=1),
                "one sequence per core": onnx_copy.open_session(path, workers=onnx_copy.usable_cores())}
    outputs = {name: [forward(x) for x in inputs] for name, forward in forwards.items()}  # also warms both
    first, second = outputs.values()
    difference = max(float(np.abs(a - b).max()) for a, b in zip(first, second))
    timings: dict[str, list[float]] = {name: [] for name in forwards}
    for round_ in range(rounds):
        for name in (list(forwards) if round_ % 2 == 0 else list(forwards)[::-1]):
            started = time.perf_counter()
            for x in inputs:
                forwards[name](x)
            timings[name].append((time.perf_counter() - started) * 1000 / len(inputs))
    medians = {name: round(statistics.median(ms), 1) for name, ms in timings.items()}
    single, per_core = medians.values()
    return {"ms_per_call": medians, "rounds_ms": {k: [round(v, 1) for v in ms] for k, ms in timings.items()},
            "speedup": round(single / per_core, 3), "max_output_difference": difference}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings()
    from rag.retrieval.embeddings import BiEncoder
    from rag.retrieval.rerank import SentenceTransformerCrossEncoder

    report: dict = {"cpu": cpu_description(), "cores": onnx_copy.usable_cores(), "results": {}}
    print(f"{report['cpu']}; {report['cores']} usable cores", flush=True)
    for kind, name, loader in (("cross-encoder", str(DEFAULT_RERANKER), SentenceTransformerCrossEncoder),
                               ("bi-encoder", settings.embedding_model, BiEncoder)):
        model = loader(name, precision="float32")
        tokenizer = model._tokenizer if kind == "cross-encoder" else model._model.tokenizer
        max_length = 512 if kind == "cross-encoder" else model._model.max_seq_length
        loaded = load_int8(kind, name, resolve_model(name), settings.quantized_cache, tokenizer, max_length)
        encoder = Encoder(kind, tokenizer, max_length)
        inputs = calls(kind, encoder, args.docs, settings)
        for copy in (ORT_FLOAT32, ORT_INT8):
            path = loaded.files.get(copy)
            if path is None:
                print(f"{kind} {copy}: not built ({loaded.notice})", flush=True)
                continue
            result = compare(path, inputs, args.rounds)
            report["results"][f"{kind} {copy}"] = {"calls": len(inputs), **result}
            print(f"{kind} {copy} ({len(inputs)} calls): {json.dumps(result)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
