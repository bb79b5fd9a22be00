"""Does bfloat16 keep the rankings? SciFact ranked with each encoder in float32 and in bfloat16, nothing else changed.

The corpus goes through the project's own loader and splitter. Search is exact (numpy over every vector, not
Chroma's approximate index), so that only the number format differs between the two runs. It prints:
- dense nDCG@10 (document level) with the bi-encoder in each precision;
- nDCG@10 after reranking the float32 bi-encoder's top 100 with the cross-encoder in each precision, for the first
  `--rerank-questions` claims (the same candidates on both sides).

Run: `scripts/run-bench.sh precision [--rerank-questions 50] [--json FILE]` (about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT  # noqa: E402
from rag.embeddings import BiEncoder  # noqa: E402
from rag.evaluation import load_beir  # noqa: E402
from rag.library import split_document  # noqa: E402
from rag.loaders import load_document  # noqa: E402
from rag.metrics import dedupe, ndcg_at_k  # noqa: E402
from rag.rerank import SentenceTransformerCrossEncoder  # noqa: E402
from rag.settings import Settings  # noqa: E402

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rerank-questions", type=int, default=50)
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = Settings()
    test = load_beir(SCIFACT)
    chunks = []
    for name, data in test.documents:
        loaded = load_document(data, name, max_pages=settings.max_pages)
        chunks += split_document(loaded, name, hashlib.sha256(data).hexdigest(), settings)
    texts, sources = [c.page_content for c in chunks], [c.metadata["source"] for c in chunks]
    qids = list(test.questions)
    print(f"{len(test.documents)} documents, {len(chunks)} chunks, {len(qids)} claims", flush=True)

    report: dict = {"chunks": len(chunks), "questions": len(qids), "dense": {}, "rerank": {}}
    candidates: list[list[int]] = []
    for precision in PRECISIONS:
        embedder = BiEncoder(settings.embedding_model, precision=precision)
        vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
        queries = np.asarray(embedder.embed_documents([test.questions[q] for q in qids]), dtype=np.float32)
        top = np.argsort(-(queries @ vectors.T), axis=1)[:, :100]
        if not candidates:
            candidates = top.tolist()
        scores = [ndcg_at_k(dedupe([sources[j] for j in top[i]]), test.qrels[q], 10) for i, q in enumerate(qids)]
        report["dense"][precision] = round(statistics.fmean(scores), 4)
        print(f"dense, bi-encoder in {precision}: nDCG@10 {report['dense'][precision]}", flush=True)

    asked = qids[: args.rerank_questions]
    for precision in PRECISIONS if asked else ():
        cross = SentenceTransformerCrossEncoder(args.reranker, precision=precision)
        scores = []
        for i, q in enumerate(asked):
            pool = candidates[i]
            ce = cross.score([(test.questions[q], texts[j]) for j in pool])
            order = [pool[k] for k in sorted(range(len(pool)), key=lambda k: -ce[k])]
            scores.append(ndcg_at_k(dedupe([sources[j] for j in order]), test.qrels[q], 10))
        report["rerank"][precision] = round(statistics.fmean(scores), 4)
        print(f"reranked ({len(asked)} claims), cross-encoder in {precision}: nDCG@10 {report['rerank'][precision]}",
              flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
