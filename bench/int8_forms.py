"""Which int8 forms of the cross-encoder keep float32's rankings on this CPU, and how fast each is: the evidence
behind issue 10's verdict on AVX2.

Five forms of the same model, each computed by ONNX Runtime one pair at a time, one pair per core (as
`rag.encoders.onnx_copy.open_session` runs the copies), over the first `--claims` SciFact claims, each with the 20
chunks the float32 bi-encoder ranks first (the app's candidates):
- `float32`: ONNX Runtime's fused float32 copy, as `auto` runs it on AVX2;
- `dynamic int8`: the int8 copy the build writes (weights per channel, one activation range per tensor);
- `per-token int8`: every product, QKV included, with one activation range per token (symmetric; uint8 with zero
  point 128, as ONNX Runtime's kernels take them) and 8-bit weights per channel. Attention runs unfused
  (MultiHeadAttention), since the fused operator computes QKV in float;
- `per-token int8, 7-bit weights`: the same with weights in [-63, 63];
- `per-token int8, uint8 weights`: the same with weights shifted to uint8 (zero point 128).

Why the three per-token forms: a torch simulation (scratch, stop 20) found that per-token ranges keep the rankings
where per-tensor ranges do not. On a CPU without VNNI, ONNX Runtime multiplies uint8 by int8 with VPMADDUBSW, which
adds two products in 16 bits and saturates: with activations around the zero point 128 and 8-bit weights, sums
exceed 32,767 and are clipped. 7-bit weights cannot overflow (255 x 63 x 2 < 32,767) but lose precision; uint8
weights take a kernel without the overflow, and slower. On a VNNI CPU the first per-token form does not saturate.

Each form: top-3 chunks the same as torch float32's (over the first 10 claims, the issue's "of 30", and over all),
the mean absolute logit change, nDCG@10 over the pool of 20 (document level), and the median ms per pool of 20
(the rerank step alone, two alternating rounds).

Run: `scripts/run-bench.sh int8_forms [--claims 50] [--json FILE]` (about 15 minutes on 2 idle cores, most of it
embedding the SciFact corpus in float32; the first run also builds the copies).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT, cpu_description, split_as_the_app_does  # noqa: E402
from rag.encoders import onnx_copy  # noqa: E402
from rag.encoders.int8_build import top3  # noqa: E402
from rag.encoders.models import resolve_model  # noqa: E402
from rag.encoders.quantize import ORT_FLOAT32, ORT_INT8, Encoder, load_int8  # noqa: E402
from rag.evaluation.metrics import dedupe, ndcg_at_k  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.retrieval.embeddings import BiEncoder  # noqa: E402
from rag.retrieval.rerank import SentenceTransformerCrossEncoder  # noqa: E402
from rag.settings import Settings  # noqa: E402

PER_TOKEN = {"per-token int8": (8, "int8"), "per-token int8, 7-bit weights": (7, "int8"),
             "per-token int8, uint8 weights": (8, "uint8")}


def per_token(source: Path, target: Path, weight_bits: int, weight_type: str) -> None:
    """Rewrite ONNX Runtime's fused float32 graph with per-token int8 on every product (see the docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    limit = 2 ** (weight_bits - 1) - 1
    added = [numpy_helper.from_array(np.array(v, dtype), name) for name, v, dtype in (
        ("pt_inverse_127", 1 / 127, np.float32), ("pt_tiny", 1e-12, np.float32), ("pt_one", 1.0, np.float32),
        ("pt_zero", 0.0, np.float32), ("pt_128", 128.0, np.float32), ("pt_zero_point", 128, np.uint8),
        ("pt_flat", [-1], np.int64))]
    nodes = []

    def product(x: str, weight: str, y: str, tag: str) -> None:
        w = numpy_helper.to_array(weights[weight]).astype(np.float32)
        scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / limit  # per output channel
        quantized = np.clip(np.round(w / scale), -limit, limit)
        stored = (quantized + 128).astype(np.uint8) if weight_type == "uint8" else quantized.astype(np.int8)
        added.extend([numpy_helper.from_array(stored, f"{tag}_w"),
                      numpy_helper.from_array(scale.astype(np.float32), f"{tag}_w_scale")])
        node = helper.make_node
        nodes.extend([
            node("Abs", [x], [f"{tag}_abs"]),
            node("ReduceMax", [f"{tag}_abs"], [f"{tag}_max"], axes=[-1], keepdims=1),
            node("Max", [f"{tag}_max", "pt_tiny"], [f"{tag}_max_"]),
            node("Mul", [f"{tag}_max_", "pt_inverse_127"], [f"{tag}_scale"]),  # one per token
            node("Reshape", [f"{tag}_scale", "pt_flat"], [f"{tag}_scales"]),
            node("Mul", [f"{tag}_scales", "pt_zero"], [f"{tag}_zeros"]),
            node("Add", [f"{tag}_zeros", "pt_128"], [f"{tag}_points"]),
            node("Cast", [f"{tag}_points"], [f"{tag}_points_u8"], to=TensorProto.UINT8),
            node("QuantizeLinear", [x, f"{tag}_scales", f"{tag}_points_u8"], [f"{tag}_x"], axis=1),
            node("MatMulIntegerToFloat", [f"{tag}_x", f"{tag}_w", "pt_one", f"{tag}_w_scale", "pt_zero_point"]
                 + (["pt_zero_point"] if weight_type == "uint8" else []), [f"{tag}_y"], domain="com.microsoft"),
            node("Mul", [f"{tag}_y", f"{tag}_scale"], [y]),
        ])

    for i, n in enumerate(graph.node):
        if n.op_type == "MatMul" and n.input[1] in weights:
            product(n.input[0], n.input[1], n.output[0], f"pt{i}")
        elif n.op_type == "Attention":
            x, w, bias = n.input[:3]
            width = numpy_helper.to_array(weights[w]).shape[0]
            heads = next(a.i for a in n.attribute if a.name == "num_heads")
            product(x, w, f"pt{i}_qkv", f"pt{i}")
            added.append(numpy_helper.from_array(np.array([width] * 3, np.int64), f"pt{i}_split"))
            nodes.append(helper.make_node("Split", [f"pt{i}_qkv", f"pt{i}_split"],
                                          [f"pt{i}_q", f"pt{i}_k", f"pt{i}_v"], axis=2))
            nodes.append(helper.make_node("MultiHeadAttention", [f"pt{i}_q", f"pt{i}_k", f"pt{i}_v", bias],
                                          [n.output[0]], domain="com.microsoft", num_heads=heads))
        else:
            nodes.append(n)
    used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name in used] + added
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)
    onnx.save(model, str(target))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--docs", type=int, default=None, help="only the first DOCS abstracts (a quick check)")
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = Settings()
    test = load_beir(SCIFACT)
    chunks = split_as_the_app_does(test.documents[: args.docs], settings)
    texts, sources = [c.page_content for c in chunks], [c.metadata["source"] for c in chunks]
    qids = list(test.questions)[: args.claims]
    print(f"{cpu_description()}\n{len(chunks)} chunks, {len(qids)} claims; embedding in float32...", flush=True)
    bi = BiEncoder(settings.embedding_model, precision="float32")
    vectors = np.asarray(bi.embed_documents(texts), dtype=np.float32)
    queries = np.asarray(bi.embed_documents([test.questions[q] for q in qids]), dtype=np.float32)
    pools = np.argsort(-(queries @ vectors.T), axis=1)[:, :20].tolist()

    torch_float32 = SentenceTransformerCrossEncoder(args.reranker, precision="float32")
    encoder = Encoder("cross-encoder", torch_float32._tokenizer, torch_float32._max_tokens)
    pool_texts = [(test.questions[q], [texts[j] for j in pools[i]]) for i, q in enumerate(qids)]
    reference = [encoder.scores(torch_float32._forward, pool) for pool in pool_texts]  # logits, as the copies give
    copies = load_int8("cross-encoder", args.reranker, resolve_model(args.reranker), settings.quantized_cache,
                       torch_float32._tokenizer, torch_float32._max_tokens)
    with tempfile.TemporaryDirectory() as work:
        files = {"float32": copies.files[ORT_FLOAT32], "dynamic int8": copies.files[ORT_INT8]}
        for name, (bits, kind) in PER_TOKEN.items():
            files[name] = Path(work) / f"{len(files)}.onnx"
            per_token(copies.files[ORT_FLOAT32], files[name], bits, kind)
        forwards = {name: onnx_copy.open_session(path) for name, path in files.items()}
        scores: dict[str, list[list[float]]] = {name: [] for name in forwards}
        times: dict[str, list[float]] = {name: [] for name in forwards}
        for _ in range(2):  # two rounds; within a pool the forms alternate, so that load drifts hit them alike
            for name in forwards:
                scores[name] = []
            for pool in pool_texts:
                for name, forward in forwards.items():
                    started = time.perf_counter()
                    scores[name].append(encoder.scores(forward, pool))
                    times[name].append((time.perf_counter() - started) * 1000)

    report = {"cpu": cpu_description(), "claims": len(qids), "pool": 20, "forms": {}}
    print(f"\n| form | top-3 chunks, first 10 claims | all {len(qids)} claims | mean abs logit change | "
          f"nDCG@10 (pool of 20) | ms per pool, p50 |\n|---|---|---|---|---|---|")
    for name, got in [("torch float32", reference), *scores.items()]:
        same = [len(set(top3(a)) & set(top3(b))) for a, b in zip(got, reference)]
        ndcg = statistics.fmean(ndcg_at_k(dedupe([sources[pools[i][k]] for k in np.argsort(-np.asarray(s))]),
                                          test.qrels[q], 10) for i, (q, s) in enumerate(zip(qids, got)))
        change = statistics.fmean(abs(x - y) for a, b in zip(got, reference) for x, y in zip(a, b))
        ms = statistics.median(times[name]) if name in times else None
        report["forms"][name] = {"top3_same_first_10": sum(same[:10]), "top3_same": sum(same),
                                 "top3_total": 3 * len(same), "mean_abs_logit_change": round(change, 4),
                                 "ndcg@10_pool20": round(ndcg, 4), "ms_per_pool_p50": ms and round(ms, 1)}
        print(f"| {name} | {sum(same[:10])} of 30 | {sum(same)} of {3 * len(same)} | {change:.3f} | {ndcg:.4f} | "
              f"{'' if ms is None else f'{ms:,.0f}'} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
