"""How ingest and query cost grow with the store: 1k, 10k and 100k chunks of synthetic text, added in steps.

At each size it prints: the chunks per second of the step that reached it, the p50 / p95 of a dense retrieve of N
candidates, of a hybrid (BM25 + dense) retrieve, and of the cross-encoder on those N, the process's memory now and at
its peak (ru_maxrss), and what the store's keyword index (rag.retrieval.keyword_index) costs: its file's size, loading
it on a restart (the first search of a new process), and building it from Chroma (once, for a store made before it).
Synthetic documents are words drawn from a Zipf-like distribution over a made-up vocabulary, `--chunk-chars` long
per chunk (shorter than the app's 1,000 so that 100k chunks take minutes, not an hour: embedding cost per chunk
is measured at full size by bench/speed.py; what this shows is what grows with the store).

Run: `scripts/run-bench.sh scale [--sizes 1000,10000,100000] [--chunk-chars 300] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, p50_p95  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.retrieval.embeddings import load_bi_encoder  # noqa: E402
from rag.retrieval.hybrid import catch_up  # noqa: E402
from rag.retrieval.keyword_index import BM25Index  # noqa: E402
from rag.retrieval.rerank import load_cross_encoder  # noqa: E402
from rag.retrieval.store import Store  # noqa: E402
from rag.settings import Settings  # noqa: E402

CHUNKS_PER_DOC = 10
SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "da", "zu", "fe", "go", "hi", "ju", "ba"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Corpus:
    """Deterministic synthetic documents: sentences of Zipf-distributed words."""

    def __init__(self, chunk_chars: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary(20_000, self.rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.words))]
        self.chunk_chars = chunk_chars

    def sentence(self) -> str:
        words = self.rng.choices(self.words, weights=self.weights, k=self.rng.randint(6, 16))
        return " ".join(words).capitalize() + "."

    def document(self) -> str:
        """CHUNKS_PER_DOC paragraphs, each one chunk: longer than half a chunk (two never merge), never over one."""
        paragraphs = []
        for _ in range(CHUNKS_PER_DOC):
            text = self.sentence()
            while len(text) < self.chunk_chars * 0.6:
                text = (text + " " + self.sentence())[: int(self.chunk_chars * 0.95)]
            paragraphs.append(text)
        return "\n\n".join(paragraphs)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def keyword_index_costs(store, question: str, candidates: int) -> dict:
    """The keyword file's size; seconds to load it in a new process's first search; seconds to build it from Chroma."""
    path = store.keywords.path
    size = sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))
    start = time.perf_counter()
    fresh = BM25Index(path)
    fresh.search(question, candidates)
    load_s = time.perf_counter() - start
    fresh.close()
    start = time.perf_counter()
    store.keywords.clear()
    store.keywords.checked = False
    catch_up(store)
    build_s = time.perf_counter() - start
    return {"keyword_file_mb": round(size / 2**20, 1), "keyword_load_s": round(load_s, 2),
            "keyword_build_s": round(build_s, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="store sizes in chunks, ascending")
    parser.add_argument("--chunk-chars", type=int, default=300)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    settings = Settings().model_copy(update={
        "chroma_path": folder / "chroma", "chroma_host": None, "reranker_model": args.reranker,
        "chunk_size": args.chunk_chars, "chunk_overlap": args.chunk_chars // 10})
    store = Store(settings, load_bi_encoder(settings))
    pipeline = Pipeline(settings, store, load_cross_encoder(settings))
    corpus = Corpus(args.chunk_chars)
    questions = [" ".join(corpus.sentence().rstrip(".").split()[:8]).lower() for _ in range(args.questions)]
    rows, chunks, number = [], 0, 0
    try:
        for size in sizes:
            start, added = time.perf_counter(), 0
            while chunks + added < size:
                batch = []
                while chunks + added + len(batch) * CHUNKS_PER_DOC < size and len(batch) < 200:
                    number += 1
                    batch.append((f"doc-{number:06d}.txt", corpus.document().encode()))
                added += sum(o.chunks for o in pipeline.library.ingest_many(batch) if o.status == "added")
            seconds = time.perf_counter() - start
            chunks += added
            times: dict[str, list[float]] = {"dense retrieve": [], "hybrid retrieve": [], "rerank": []}
            # The first hybrid search of a process compares the keyword index with the registry once (timed below).
            pipeline.retrieve(questions[0], rerank=True, hybrid=True, candidates=args.candidates)
            for q in questions:
                dense = pipeline.retrieve(q, rerank=True, candidates=args.candidates)
                hybrid = pipeline.retrieve(q, rerank=False, hybrid=True, candidates=args.candidates)
                times["dense retrieve"].append(dense.timings.retrieve_ms)
                times["rerank"].append(dense.timings.rerank_ms)
                times["hybrid retrieve"].append(hybrid.timings.retrieve_ms)
            row = {"chunks": store.count_chunks(), "added": added, "step_seconds": round(seconds, 1),
                   "chunks_per_s": round(added / seconds, 1), "rss_mb": round(rss_mb()), "peak_mb": round(peak_mb()),
                   **{k: p50_p95(v) for k, v in times.items()}}
            row.update(keyword_index_costs(store, questions[0], args.candidates))  # after memory: it loads a copy
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        store.close()
    print(render(rows, args))
    if args.json:
        args.json.write_text(json.dumps({"chunk_chars": args.chunk_chars, "candidates": args.candidates,
                                         "rows": rows}, indent=1))


def render(rows: list[dict], args) -> str:
    lines = [f"\n| chunks in store | step: chunks/s | dense retrieve ms p50 / p95 | hybrid retrieve ms p50 / p95 | "
             f"rerank {args.candidates} ms p50 / p95 | memory MB now / peak | keyword file MB | "
             "keyword index: load on restart s / build from Chroma s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[k]['p50']:.0f} / {r[k]['p95']:.0f}" for k in ("dense retrieve", "hybrid retrieve", "rerank")]
        lines.append(f"| {r['chunks']:,} | {r['chunks_per_s']} | " + " | ".join(cells)
                     + f" | {r['rss_mb']:,} / {r.get('peak_mb', 0):,} | {r.get('keyword_file_mb', '')} | "
                     f"{r.get('keyword_load_s', '')} / {r.get('keyword_build_s', '')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
