"""How fast float32 could possibly go on this CPU: the arithmetic floor of retrieve 20 + rerank to 3 and of ingest,
beside what 2x the textbook pipeline asks for (issue 10's target) as `bench/speed.py` measured it.

The floor counts only the encoders' multiplications (the linear layers and attention's two products of MiniLM-L6,
on the real token counts) and divides them by the best float32 matrix-product rate this CPU reaches with two threads
(torch, the model's own shapes). Nothing real can be faster in float32: tokenizing, layer norms, softmax and
GELU, Chroma and Python all come on top. Where 2x the textbook needs less time than that floor, only a cheaper
number format (int8 or bfloat16 computed natively) can reach it. It also measures the same products in int8 as
ONNX Runtime computes its int8 copy (dynamic quantization counted), and prints the copies' own timings on this CPU
(their `provenance.json`), which show whether one is faster here.

- rerank: the ten check pools of `rag/encoders/data/calibration.jsonl.gz` (SciFact claims 181-190, each with its 20
nearest
  chunks of the project's splitter), question and chunk as the cross-encoder reads them (up to 512 tokens);
- ingest: the first `--docs` SciFact abstracts split as the app splits them, each chunk as the bi-encoder reads it
  (up to its max_seq_length).

Run: `scripts/run-bench.sh floor [--docs 600] [--speed bench/results/speed-avx2.json] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT, cpu_description, split_as_the_app_does  # noqa: E402
from rag.encoders.int8_build import read_calibration  # noqa: E402
from rag.encoders.models import resolve_model  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.settings import Settings  # noqa: E402


def model_shape(folder: Path) -> dict[str, int]:
    config = json.loads((folder / "config.json").read_text())
    return {k: config[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size")}


def flops(lengths: list[int], shape: dict[str, int]) -> float:
    """Multiply-adds x 2 of the encoder's linear layers and of attention's QK^T and AV, sequence by sequence."""
    layers, h, inner = shape["num_hidden_layers"], shape["hidden_size"], shape["intermediate_size"]
    linear_per_token = 4 * h * h + 2 * h * inner
    return 2 * layers * sum(n * linear_per_token + 2 * n * n * h for n in lengths)


def float32_rate(shape: dict[str, int], tokens: int, repeats: int = 15) -> float:
    """The best FLOP/s of two-thread float32 matrix products at the model's shapes, over `repeats` tries."""
    import torch

    torch.set_num_threads(2)
    h, inner = shape["hidden_size"], shape["intermediate_size"]
    x, y = torch.randn(tokens, h), torch.randn(tokens, inner)
    products = [(x, torch.randn(h, h)), (x, torch.randn(h, inner)), (y, torch.randn(inner, h))]
    work = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b in products)
    return work / best_seconds(lambda: [a @ b for a, b in products], repeats)


def best_seconds(run, repeats: int) -> float:
    """The shortest of `repeats` timed calls of `run`, after one untimed call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def int8_rate(shape: dict[str, int], tokens: int, repeats: int = 15) -> float:
    """The same products in int8 as ONNX Runtime computes them in its int8 copy (rag/encoders/onnx_copy.py: dynamic,
    weights per channel), two threads, best of `repeats`; the quantizing of the activations is counted in the time."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    h, inner = shape["hidden_size"], shape["intermediate_size"]
    rng = np.random.default_rng(0)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 2, 3
    runs, work = [], 0
    with tempfile.TemporaryDirectory() as folder:
        for k, n in ((h, h), (h, inner), (inner, h)):
            weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
            graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "product",
                                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, n])], [weight])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
            model.ir_version = 8
            plain, quantized = f"{folder}/plain.onnx", f"{folder}/int8.onnx"
            onnx.save(model, plain)
            logging.disable(logging.WARNING)  # its advice, on the root logger, of a pre-processing step for CNNs
            try:
                quantize_dynamic(plain, quantized, weight_type=QuantType.QInt8, per_channel=True)
            finally:
                logging.disable(logging.NOTSET)
            session = ort.InferenceSession(quantized, options, providers=["CPUExecutionProvider"])
            x = rng.standard_normal((tokens, k)).astype(np.float32)
            runs.append((session, {"x": x}))
            work += 2 * tokens * k * n
    # Each product timed on its own: three sessions run back to back would each find the cores busy with the last
    # one's spinning thread pool, which the copy's single session never meets.
    return work / sum(best_seconds(lambda: session.run(None, feed), repeats) for session, feed in runs)


def copy_timings(settings: Settings) -> dict[str, dict]:
    """The OpenVINO copies' build timings (ms per pool of 20) found in the quantized cache, per encoder kind."""
    found = {}
    for provenance in Path(settings.quantized_cache).expanduser().glob("*/provenance.json"):
        data = json.loads(provenance.read_text())
        found[f"{data.get('kind')} ({Path(str(data.get('source_model'))).name})"] = data.get("timings_ms", {})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=600, help="SciFact abstracts split for the ingest floor")
    parser.add_argument("--speed", type=Path, help="a bench/speed.py JSON from this CPU: the textbook's figures")
    parser.add_argument("--reranker", type=Path, default=DEFAULT_RERANKER)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    settings = Settings()
    embedder = Path(resolve_model(settings.embedding_model))
    max_seq = json.loads((embedder / "sentence_bert_config.json").read_text())["max_seq_length"]

    cross_tokenizer = AutoTokenizer.from_pretrained(str(args.reranker))
    pools = read_calibration()[1]
    pair_lengths = [[len(ids) for ids in cross_tokenizer([q] * len(ps), ps, truncation=True,
                                                          max_length=512)["input_ids"]] for q, ps in pools]
    cross_shape = model_shape(args.reranker)
    rerank_flops = statistics.median(flops(lengths, cross_shape) for lengths in pair_lengths)

    chunks = [chunk.page_content for chunk in split_as_the_app_does(load_beir(SCIFACT).documents[: args.docs],
                                                                      settings)]
    bi_tokenizer = AutoTokenizer.from_pretrained(str(embedder))
    chunk_lengths = [len(ids) for ids in bi_tokenizer(chunks, truncation=True, max_length=max_seq)["input_ids"]]
    bi_shape = model_shape(embedder)
    chunk_flops = flops(chunk_lengths, bi_shape) / len(chunks)

    rate = max(float32_rate(cross_shape, sum(lengths)) for lengths in pair_lengths[:3])
    rate_int8 = max(int8_rate(cross_shape, sum(lengths)) for lengths in pair_lengths[:3])
    report = {
        "cpu": cpu_description(),
        "float32 GFLOP/s (2 threads, best)": round(rate / 1e9, 1),
        "int8 GOP/s (ONNX Runtime, dynamic, 2 threads, best)": round(rate_int8 / 1e9, 1),
        "rerank 20": {"tokens per pool, median": statistics.median(sum(x) for x in pair_lengths),
                      "GFLOP per pool": round(rerank_flops / 1e9, 1),
                      "float32 floor ms": round(rerank_flops / rate * 1000)},
        "ingest": {"chunks": len(chunks), "tokens per chunk, mean": round(statistics.mean(chunk_lengths), 1),
                   "GFLOP per chunk": round(chunk_flops / 1e9, 2),
                   "float32 ceiling chunks/s": round(rate / chunk_flops, 1)},
        "OpenVINO copies, build timings ms per pool of 20": copy_timings(settings),
    }
    print(f"CPU: {report['cpu']}; float32 matrix products, 2 threads: {report['float32 GFLOP/s (2 threads, best)']} "
          f"GFLOP/s at best; in int8 (ONNX Runtime, dynamic) "
          f"{report['int8 GOP/s (ONNX Runtime, dynamic, 2 threads, best)']} GOP/s")
    r, i = report["rerank 20"], report["ingest"]
    print(f"rerank 20: {r['tokens per pool, median']} tokens, {r['GFLOP per pool']} GFLOP per pool -> float32 "
          f"cannot take less than {r['float32 floor ms']} ms")
    print(f"ingest: {i['chunks']} chunks, {i['tokens per chunk, mean']} tokens each on average, "
          f"{i['GFLOP per chunk']} GFLOP per chunk -> float32 cannot pass {i['float32 ceiling chunks/s']} chunks/s")
    if args.speed:
        speed = json.loads(args.speed.read_text())
        textbook = speed["ratios"]["ingest"]["textbook best format"]
        query = speed["query"]["20"]
        tb_ms = query[f"{textbook} retrieve+rerank"]["p50"]
        ours = query["ours retrieve"]["p50"]
        tb_ingest = speed["ingest"][textbook]["chunks_per_s"]
        report["against 2x the textbook"] = {
            "textbook": textbook, "speed file": str(args.speed), "speed file CPU": speed.get("cpu"),
            "textbook retrieve 20 + rerank to 3 ms p50": tb_ms, "2x needs ms": round(tb_ms / 2),
            "of which rerank, after our retrieve": round(tb_ms / 2 - ours),
            "textbook ingest chunks/s": tb_ingest, "2x needs chunks/s": round(2 * tb_ingest, 1)}
        t = report["against 2x the textbook"]
        print(f"2x the textbook ({textbook}, {args.speed}): retrieve + rerank in {t['2x needs ms']} ms, so rerank in "
              f"{t['of which rerank, after our retrieve']} ms after our retrieve ({ours:.0f} ms), against the float32 "
              f"floor of {r['float32 floor ms']} ms; ingest at {t['2x needs chunks/s']} chunks/s, against the float32 "
              f"ceiling of {i['float32 ceiling chunks/s']}")
    for name, timings in report["OpenVINO copies, build timings ms per pool of 20"].items():
        print(f"{name}: " + ", ".join(f"{fmt} {ms:,.0f} ms" for fmt, ms in timings.items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
