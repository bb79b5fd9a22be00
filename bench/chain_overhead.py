"""What running retrieval through LangChain runnables costs: `Pipeline.retrieve` (StoreRetriever inside a
RerankingRetriever inside an LCEL chain, timed by a callback) against the same two steps called directly
(`StoreRetriever._get_relevant_documents` and `ScoreKeepingReranker.compress_documents`, no runnables, no callbacks).

The two are interleaved question by question (which goes first alternates) over the same store, so that both see the
same machine load; the difference of the medians is the runnables' cost. The sample documents in data/ and the questions
of docs/sample-qa.jsonl, N = 20 candidates, the configured bi-encoder and `--reranker`.

Run: `scripts/run-bench.sh chain_overhead [--rounds 5] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402

from bench.common import DEFAULT_RERANKER, p50_p95  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.retrieval.embeddings import load_bi_encoder  # noqa: E402
from rag.retrieval.rerank import ScoreKeepingReranker, load_cross_encoder  # noqa: E402
from rag.retrieval.retriever import StoreRetriever  # noqa: E402
from rag.retrieval.store import Store  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--rounds", type=int, default=5, help="passes over the questions")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in (REPO / "docs" / "sample-qa.jsonl").read_text().splitlines()
                 if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, chroma_path=Path(tmp) / "chroma", reranker_model=args.reranker)
        store = Store(settings, load_bi_encoder(settings))
        pipeline = Pipeline(settings, store, load_cross_encoder(settings))
        pipeline.library.ingest_many((p.name, p.read_bytes()) for p in sorted((REPO / "data").iterdir()))
        retriever = StoreRetriever(store=store, k=20, keyword_index=pipeline.keyword_index)
        reranker = ScoreKeepingReranker(model=pipeline.cross_encoder(), top_n=None)

        def direct(question: str) -> list:
            docs = retriever._get_relevant_documents(
                question, run_manager=CallbackManagerForRetrieverRun.get_noop_manager())
            return reranker.compress_documents(docs, question)

        def chained(question: str) -> list:
            return pipeline.retrieve(question, rerank=True, candidates=20).reranked_order

        for q in questions[:3]:  # warm both
            direct(q), chained(q)
        times: dict[str, list[float]] = {"direct": [], "chain": []}
        for round_ in range(args.rounds):
            for i, q in enumerate(questions):
                order = [("direct", direct), ("chain", chained)]
                for name, run in order if (round_ + i) % 2 else order[::-1]:  # neither always goes second
                    start = time.perf_counter()
                    run(q)
                    times[name].append((time.perf_counter() - start) * 1000)
                assert [d.id for d in direct(q)][:3] == [s.chunk_id for s in chained(q)][:3], "the same top 3"
        store.close()
    result = {name: p50_p95(values) for name, values in times.items()}
    result["overhead_ms_p50"] = round(statistics.median(times["chain"]) - statistics.median(times["direct"]), 2)
    result["pairs"] = len(times["chain"])
    print(f"retrieve 20 + rerank, {result['pairs']} questions each, interleaved: "
          f"direct p50 {result['direct']['p50']:.1f} ms, through the chain p50 {result['chain']['p50']:.1f} ms, "
          f"difference {result['overhead_ms_p50']:+.2f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
