"""Does a faster number format keep the rankings? SciFact ranked with each encoder in float32, bfloat16, int8 (static,
OpenVINO), float32 computed by OpenVINO (`openvino-float32`) and by ONNX Runtime (`onnxruntime-float32`), and int8
computed by ONNX Runtime (`onnxruntime-int8`, dynamic; rag/encoders/onnx_copy.py), nothing else changed.

The corpus goes through the project's own loader and splitter. Search is exact (numpy over every vector, not
Chroma's approximate index), so that only the number format differs between runs. Claims 181-300 calibrate the
int8 copies (rag/encoders/data/calibration.jsonl.gz), so every figure here is on claims 1-180 only. It prints:
- dense nDCG@10 (document level) with the bi-encoder in each format, and how many of its top-3 chunks per claim
  are float32's;
- for the first `--rerank-questions` claims, the float32 bi-encoder's top `--pool` reranked by the cross-encoder in
  each format: nDCG@10, and how many of the top-3 chunks of the pool of 20 (the app's candidates) are float32's,
  over the first 10 claims ("of 30", the issue's measure) and over all of them;
- whether each format is kept: nDCG@10 within 0.005 of float32 and, for the cross-encoder, at least 29 of 30
  top-3 chunks the same;
- the int8 copies' provenance (build time, check on the calibration file's own pools, timings on this CPU).

Run: `scripts/run-bench.sh precision [--rerank-questions 50] [--pool 100] [--formats
float32,bfloat16,int8,openvino-float32,onnxruntime-int8,onnxruntime-float32] [--json FILE]` (about 30 minutes on 2 idle
cores; the first run also builds the int8 copies).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT, cpu_description, split_as_the_app_does  # noqa: E402
from rag.encoders.quantize import COPIES, Encoder, load_int8, open_named_copy  # noqa: E402
from rag.evaluation.metrics import dedupe, ndcg_at_k  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.retrieval.embeddings import BiEncoder  # noqa: E402
from rag.retrieval.rerank import SentenceTransformerCrossEncoder  # noqa: E402
from rag.settings import Settings  # noqa: E402

FORMATS = ("float32", "bfloat16", *COPIES)
EVALUATED = 180  # claims 181-300 calibrate the int8 copies
APP_POOL, MIN_SAME, MAX_LOSS = 20, 29 / 30, 0.005


def same_top3(ranked: list[list[int]], reference: list[list[int]]) -> int:
    return sum(len(set(a[:3]) & set(b[:3])) for a, b in zip(ranked, reference))


def verdict(result: dict, reference: dict, agreement: bool = True) -> dict:
    """Kept: nDCG@10 within 0.005 of float32's and, where `agreement` (the cross-encoder, whose top 3 the LLM
    reads), at least 29 of 30 top-3 chunks the same. The bi-encoder's candidates are reranked, so for it the
    issue asks nDCG@10 only; its agreement is reported beside."""
    kept = (reference["ndcg@10"] - result["ndcg@10"] <= MAX_LOSS
            and (not agreement or result["top3_same"] >= MIN_SAME * result["top3_total"]))
    return {**result, "ndcg@10 change": round(result["ndcg@10"] - reference["ndcg@10"], 4), "kept": kept}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rerank-questions", type=int, default=50)
    parser.add_argument("--pool", type=int, default=100, help="candidates reranked for nDCG@10")
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--quantized-cache", type=Path, default=None,
                        help="where the int8 copies are built (default: RAG_QUANTIZED_CACHE)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated; float32 first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    formats = [f for f in args.formats.split(",") if f]

    settings = Settings()
    cache = args.quantized_cache or settings.quantized_cache
    test = load_beir(SCIFACT)
    chunks = split_as_the_app_does(test.documents, settings)
    texts, sources = [c.page_content for c in chunks], [c.metadata["source"] for c in chunks]
    qids = list(test.questions)[:EVALUATED]
    print(f"{cpu_description()}\n{len(test.documents)} documents, {len(chunks)} chunks, {len(qids)} claims",
          flush=True)

    report: dict = {"cpu": cpu_description(), "chunks": len(chunks), "questions": len(qids), "dense": {},
                    "rerank": {}, "int8 provenance": {}}
    candidates: list[list[int]] = []
    for fmt in formats:
        embed, name = _embedder(settings.embedding_model, fmt, cache)
        if embed is None:
            print(f"bi-encoder {fmt}: not available ({name})", flush=True)
            report["dense"][fmt] = {"unavailable": name}
            continue
        vectors = np.asarray(embed(texts), dtype=np.float32)
        queries = np.asarray(embed([test.questions[q] for q in qids]), dtype=np.float32)
        top = np.argsort(-(queries @ vectors.T), axis=1)[:, : args.pool].tolist()
        candidates = candidates or top
        scores = [ndcg_at_k(dedupe([sources[j] for j in top[i]]), test.qrels[q], 10) for i, q in enumerate(qids)]
        result = {"format": name, "ndcg@10": round(statistics.fmean(scores), 4),
                  "top3_same": same_top3(top, candidates), "top3_total": 3 * len(qids)}
        report["dense"][fmt] = verdict(result, report["dense"].get("float32", result), agreement=False)
        print(f"dense, bi-encoder {fmt}: {report['dense'][fmt]}", flush=True)

    asked = qids[: args.rerank_questions]
    reference: list[list[int]] = []
    for fmt in formats if asked else ():
        cross = SentenceTransformerCrossEncoder(args.reranker, precision="float32" if fmt in COPIES else fmt)
        if fmt in COPIES:  # a copy the int8 build writes: measured even where the build's own check refused it
            loaded = _int8("cross-encoder", args.reranker, cross, cache)
            copy = open_named_copy(fmt, loaded)
            if copy is None:
                why = loaded.notice or f"no {fmt} copy was built"
                print(f"cross-encoder {fmt}: not available ({why})", flush=True)
                report["rerank"][fmt] = {"unavailable": why}
                continue
            cross._forward, cross.format = copy
        scores, app_pools = [], []
        for i, q in enumerate(asked):
            pool = candidates[i]
            ce = cross.score([(test.questions[q], texts[j]) for j in pool])
            order = [pool[k] for k in sorted(range(len(pool)), key=lambda k: -ce[k])]
            scores.append(ndcg_at_k(dedupe([sources[j] for j in order]), test.qrels[q], 10))
            app_pools.append([pool[k] for k in sorted(range(APP_POOL), key=lambda k: -ce[k])])
        reference = reference or app_pools
        result = {"format": cross.format, "ndcg@10": round(statistics.fmean(scores), 4),
                  "top3_same": same_top3(app_pools, reference), "top3_total": 3 * len(asked),
                  "top3_same_first_10": f"{same_top3(app_pools[:10], reference[:10])} of 30"}
        report["rerank"][fmt] = verdict(result, report["rerank"].get("float32", result))
        print(f"reranked ({len(asked)} claims, pools of {args.pool}; top 3 of {APP_POOL}), cross-encoder {fmt}: "
              f"{report['rerank'][fmt]}", flush=True)

    if set(COPIES) & set(formats):
        for kind, model, loader in (("bi-encoder", settings.embedding_model, BiEncoder),
                                    ("cross-encoder", args.reranker, SentenceTransformerCrossEncoder)):
            loaded = _int8(kind, model, loader(model, precision="float32"), cache)
            report["int8 provenance"][kind] = loaded.provenance
            print(f"{kind} int8 copy: {json.dumps(loaded.provenance)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def _int8(kind: str, model: str, encoder, cache: Path):
    """The int8 copy of `model` (built if needed), whether or not it passed the build's check."""
    from rag.encoders.models import resolve_model

    return load_int8(kind, model, resolve_model(model), cache, encoder._model.tokenizer,
                     encoder._model.max_seq_length)


def _embedder(model: str, fmt: str, cache: Path):
    """(embed texts -> unit vectors, format name) for the bi-encoder in `fmt`, or (None, why not)."""
    embedder = BiEncoder(model, precision="float32" if fmt in COPIES else fmt)
    if fmt not in COPIES:
        return embedder.embed_documents, embedder.format
    loaded = _int8("bi-encoder", model, embedder, cache)
    copy = open_named_copy(fmt, loaded)
    if copy is None:
        return None, loaded.notice or f"no {fmt} copy was built"
    forward, name = copy
    encoder = Encoder("bi-encoder", embedder._model.tokenizer, embedder._model.max_seq_length)
    return (lambda texts: encoder.embed(forward, texts, embedder.batch_size)), name


if __name__ == "__main__":
    main()
