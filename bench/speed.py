"""Speed of this project's pipeline against the textbook LangChain pipeline, same models, same machine, same run.

Prints, and writes as JSON with `--json`:
- ingest: chunks per second for the sample documents (ours) and for the first `--docs` SciFact abstracts (both);
- query path for N = 10, 20, 50 candidates: retrieve, rerank to 3, both together (p50 / p95 over `--questions`
  SciFact claims, the two pipelines interleaved question by question), and for ours the first answer token and the
  full answer from the LLM over Ollama's HTTP API (`--answers` questions per N);
- ours / textbook as a speed-up ratio for ingest and for retrieve + rerank (the LLM call is the same in both).

Run: `scripts/run-bench.sh speed [--docs 1000] [--questions 20] [--answers 5] [--also-float32] [--json FILE]`.
The cross-encoder is the one trained for this project (`--reranker`), with ms-marco-MiniLM-L6-v2's architecture and
so its cost per pair; the LLM is RAG_OLLAMA_URL if it answers, else the stand-in server.
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

from bench.common import DEFAULT_RERANKER, SCIFACT, llm_settings, p50_p95  # noqa: E402
from rag.embeddings import load_bi_encoder  # noqa: E402
from rag.evaluation import load_beir  # noqa: E402
from rag.library import Library, expand_paths  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.rerank import load_cross_encoder  # noqa: E402
from rag.results import elapsed_ms as ms  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.store import Store  # noqa: E402

N_VALUES = (10, 20, 50)


def build_ours(settings: Settings) -> tuple[Pipeline, float]:
    start = time.perf_counter()
    store = Store(settings, load_bi_encoder(settings))
    pipeline = Pipeline(settings, store, load_cross_encoder(settings))
    return pipeline, ms(start) / 1000


def ingest_ours(pipeline: Pipeline, files: list[tuple[str, bytes]]) -> dict:
    start = time.perf_counter()
    outcomes = pipeline.library.ingest_many(files)
    seconds = time.perf_counter() - start
    chunks = sum(o.chunks for o in outcomes if o.status == "added")
    return {"chunks": chunks, "seconds": round(seconds, 1), "chunks_per_s": round(chunks / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts to index (5183 = all)")
    parser.add_argument("--questions", type=int, default=20, help="SciFact claims asked per N")
    parser.add_argument("--answers", type=int, default=5, help="of those, answered by the LLM (ours only)")
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--also-float32", action="store_true", help="also time ours with both encoders in float32")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    from bench import textbook

    scifact = load_beir(SCIFACT)  # the first --docs abstracts, and every test claim
    documents, queries = scifact.documents[: args.docs], list(scifact.questions.values())
    questions = queries[: args.questions]
    scratch = Path(tempfile.mkdtemp(prefix="rag-speed-"))
    base = Settings().model_copy(update={"reranker_model": args.reranker, "chroma_host": None})
    variants = {"ours": base}
    if args.also_float32:
        variants["ours-float32"] = base.model_copy(update={"embedding_precision": "float32",
                                                           "reranker_precision": "float32"})
    report: dict = {"docs": args.docs, "questions": len(questions), "reranker": args.reranker, "ingest": {},
                    "query": {}, "answer": {}}

    # -- models (loading is not part of any timing below)
    start = time.perf_counter()
    tb_embeddings = textbook.load_embeddings(base_embedder_path(base))
    tb_cross = textbook.load_cross_encoder(args.reranker)
    print(f"textbook: models loaded in {ms(start) / 1000:.1f} s", flush=True)
    pipelines = {}
    for name, settings in variants.items():
        settings = settings.model_copy(update={"chroma_path": scratch / name / "chroma"})
        pipelines[name], seconds = build_ours(settings)
        print(f"{name}: models loaded in {seconds:.1f} s ({pipelines[name].store.embedder.dtype})", flush=True)

    # -- ingest
    samples = [(p.name, p.read_bytes()) for p in expand_paths([REPO / "data"])]
    for name, pipeline in pipelines.items():
        report["ingest"][f"{name} sample documents"] = ingest_ours(pipeline, samples)
    start = time.perf_counter()
    chunks = textbook.split([textbook.Document(page_content=text.decode(), metadata={"source": doc_id})
                             for doc_id, text in documents])
    tb_store = textbook.index(chunks, tb_embeddings, scratch / "textbook")
    seconds = time.perf_counter() - start
    report["ingest"]["textbook scifact"] = {"chunks": len(chunks), "seconds": round(seconds, 1),
                                           "chunks_per_s": round(len(chunks) / seconds, 1)}
    print(f"textbook: {len(chunks)} chunks in {seconds:.1f} s", flush=True)
    for name, pipeline in pipelines.items():
        report["ingest"][f"{name} scifact"] = result = ingest_ours(pipeline, documents)
        print(f"{name}: {result['chunks']} chunks in {result['seconds']} s", flush=True)

    # -- query path, interleaved so that a busy moment on the machine hits both pipelines alike
    for n in N_VALUES:
        retriever = textbook.reranking_retriever(tb_store, tb_cross, candidates=n)
        for q in questions[:2]:  # warm-up
            retriever.invoke(q)
            for pipeline in pipelines.values():
                pipeline.retrieve(q, rerank=True, candidates=n, keep=3)
        times: dict[str, list[float]] = {}
        for q in questions:
            start = time.perf_counter()
            tb_store.similarity_search(q, k=n)
            times.setdefault("textbook retrieve", []).append(ms(start))
            start = time.perf_counter()
            retriever.invoke(q)
            times.setdefault("textbook retrieve+rerank", []).append(ms(start))
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                ranking = pipeline.retrieve(q, rerank=True, candidates=n, keep=3)
                times.setdefault(f"{name} retrieve+rerank", []).append(ms(start))
                times.setdefault(f"{name} retrieve", []).append(ranking.timings.retrieve_ms)
                times.setdefault(f"{name} rerank", []).append(ranking.timings.rerank_ms)
        report["query"][n] = {k: p50_p95(v) for k, v in times.items()}
        print(f"N={n}: " + "; ".join(f"{k} {v['p50']:.0f}/{v['p95']:.0f}" for k, v in report["query"][n].items()),
              flush=True)

    # -- answers (ours): the LLM's part of the query path
    with llm_settings(base) as llm:
        for n in N_VALUES:
            pipeline = pipelines["ours"]
            # Threshold off: every question goes to the LLM, which is what is timed here.
            pipeline.settings = pipeline.settings.model_copy(update={**llm, "min_rerank_score": 0.0})
            first, full = [], []
            for q in questions[: args.answers]:
                start = time.perf_counter()
                answer = pipeline.ask(q, candidates=n, keep=3)
                for i, _ in enumerate(answer.tokens):
                    if i == 0:
                        first.append(ms(start))
                full.append(ms(start))
            report["answer"][n] = {"first token": p50_p95(first), "full answer": p50_p95(full),
                                   "model": llm["ollama_model"]}
            print(f"N={n}: first token {report['answer'][n]['first token']}, full {report['answer'][n]['full answer']}",
                  flush=True)

    report["ratios"] = ratios(report)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def base_embedder_path(settings: Settings) -> str:
    from rag.models import resolve_model

    return resolve_model(settings.embedding_model)


def ratios(report: dict) -> dict:
    """Textbook time / ours: how many times faster ours is."""
    ingest = report["ingest"]
    out = {"ingest": round(ingest["ours scifact"]["chunks_per_s"] / ingest["textbook scifact"]["chunks_per_s"], 2)}
    for n, t in report["query"].items():
        out[f"retrieve+rerank N={n}"] = round(t["textbook retrieve+rerank"]["p50"] / t["ours retrieve+rerank"]["p50"], 2)
    return out


def render(report: dict) -> str:
    lines = ["", "| ingest | chunks | seconds | chunks/s |", "|---|---|---|---|"]
    for name, r in report["ingest"].items():
        lines.append(f"| {name} | {r['chunks']} | {r['seconds']} | {r['chunks_per_s']} |")
    lines += ["", "| query path, ms p50 / p95 | " + " | ".join(f"N={n}" for n in report["query"]) + " |",
              "|---|" + "---|" * len(report["query"])]
    stages = list(next(iter(report["query"].values())))
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(f"{t[stage]['p50']:.0f} / {t[stage]['p95']:.0f}"
                                                  for t in report["query"].values()) + " |")
    for part in ("first token", "full answer"):
        lines.append(f"| ours {part} (LLM {next(iter(report['answer'].values()))['model']}) | "
                     + " | ".join(f"{a[part]['p50']:.0f} / {a[part]['p95']:.0f}" for a in report["answer"].values())
                     + " |")
    lines += ["", "| speed-up, textbook time / ours | x |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["ratios"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
