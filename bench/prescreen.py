"""Would less work keep the cross-encoder's top 3? A two-pass rerank, measured and (so far) rejected.

Float32 arithmetic on an AVX2-only CPU is near its limit (bench/floor.py) and int8 is slower there, so the one
lever left for retrieve 20 + rerank to 3 is computing less. The cheapest idea: score all 20 candidates on a
truncated passage (its first T tokens), then rescore only the best K of them in full and keep the top 3 of those.
Its cost is about (tokens of the truncated pass + K full pairs) / (20 full pairs); it is worth having only if it
keeps the rankings by the issue's bar: at least 29 of 30 top-3 chunks the same as scoring all 20 in full (first
10 claims), and nDCG@10 within 0.005.

Pools are the float32 bi-encoder's top 20 over SciFact (the project's loader and splitter, exact search); scores
are the cross-encoder's own logits in float32. No timing is taken: the cost column is the token arithmetic.

Run: `scripts/run-bench.sh prescreen [--claims 60] [--json FILE]` (about 25 minutes on 2 cores, most of it
embedding the corpus).
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
from rag.evaluation.metrics import dedupe, ndcg_at_k  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.retrieval.embeddings import BiEncoder  # noqa: E402
from rag.retrieval.rerank import SentenceTransformerCrossEncoder  # noqa: E402
from rag.settings import Settings  # noqa: E402

POOL, KEEP = 20, 3
TRUNCATIONS, RESCORED = (32, 64, 96, 128), (3, 4, 5, 6, 8, 10)


def score(cross: SentenceTransformerCrossEncoder, pairs: list[tuple[str, str]],
          passage_tokens: int | None) -> tuple[list[float], int]:
    """Logits for the pairs with each passage cut to its first `passage_tokens` tokens (None: whole), and the
    number of tokens computed."""
    tokenizer, limit = cross._tokenizer, cross._model.max_seq_length
    encoded: dict[str, list] = {}
    for question, passage in pairs:
        width = limit
        if passage_tokens is not None:
            width = min(limit, len(tokenizer(question, add_special_tokens=False)["input_ids"]) + 3 + passage_tokens)
        for key, value in tokenizer(question, passage, truncation="only_second", max_length=width).items():
            encoded.setdefault(key, []).append(value)
    return cross.logits(encoded).tolist(), sum(len(ids) for ids in encoded["input_ids"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=60)
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    settings = Settings()
    test = load_beir(SCIFACT)
    chunks = split_as_the_app_does(test.documents, settings)
    texts, sources = [c.page_content for c in chunks], [c.metadata["source"] for c in chunks]
    qids = list(test.questions)[: args.claims]
    embedder = BiEncoder(settings.embedding_model, precision="float32")
    vectors = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    queries = np.asarray(embedder.embed_documents([test.questions[q] for q in qids]), dtype=np.float32)
    pools = np.argsort(-(queries @ vectors.T), axis=1)[:, :POOL].tolist()
    cross = SentenceTransformerCrossEncoder(args.reranker, precision="float32")

    full, truncated, tokens = [], {t: [] for t in TRUNCATIONS}, {"full": 0, **{t: 0 for t in TRUNCATIONS}}
    for i, q in enumerate(qids):
        pairs = [(test.questions[q], texts[j]) for j in pools[i]]
        logits, n = score(cross, pairs, None)
        full.append(logits)
        tokens["full"] += n
        for t in TRUNCATIONS:
            logits, n = score(cross, pairs, t)
            truncated[t].append(logits)
            tokens[t] += n

    def ndcg(order: list[int], i: int) -> float:
        return ndcg_at_k(dedupe([sources[pools[i][k]] for k in order]), test.qrels[qids[i]], 10)

    reference = [sorted(range(POOL), key=lambda k: -full[i][k]) for i in range(len(qids))]
    base = statistics.fmean(ndcg(reference[i], i) for i in range(len(qids)))
    report = {"cpu": cpu_description(), "claims": len(qids), "pool": POOL, "ndcg@10 all in full": round(base, 4),
              "tokens": {str(k): v for k, v in tokens.items()}, "trials": []}
    print(f"{report['cpu']}\n{len(qids)} claims, pools of {POOL}; all 20 in full: nDCG@10 {base:.4f}")
    for t in TRUNCATIONS:
        for k in RESCORED:
            same = same_first_10 = 0
            scores = []
            for i in range(len(qids)):
                first = sorted(range(POOL), key=lambda j: -truncated[t][i][j])
                best = sorted(first[:k], key=lambda j: -full[i][j])
                overlap = len(set(best[:KEEP]) & set(reference[i][:KEEP]))
                same += overlap
                same_first_10 += overlap if i < 10 else 0
                scores.append(ndcg(best + first[k:], i))
            trial = {"passage_tokens": t, "rescored": k,
                     "cost": round(tokens[t] / tokens["full"] + k / POOL, 2),
                     "top3_same": same, "top3_total": KEEP * len(qids), "top3_same_first_10": f"{same_first_10} of 30",
                     "ndcg@10": round(statistics.fmean(scores), 4),
                     "ndcg@10 change": round(statistics.fmean(scores) - base, 4)}
            trial["kept"] = same_first_10 >= 29 and trial["ndcg@10 change"] >= -0.005
            report["trials"].append(trial)
            print(json.dumps(trial), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
