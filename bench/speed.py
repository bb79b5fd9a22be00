"""Speed of this project's pipeline against the textbook LangChain pipeline, same models, same machine, same run.

Four pipelines, all in one process:
- `textbook-float32`: the textbook pipeline as LangChain's documentation leads to it (its default format);
- `textbook-bfloat16`: the same with both encoders in bfloat16, set as a user would (`model_kwargs`); timed only
  where the CPU computes bfloat16 natively (AVX512-BF16, AMX): elsewhere it is emulated, many times slower, so it
  cannot be the textbook's best format, and would take most of the run (`--all-formats` times it anyway);
- `ours-float32`: this pipeline with both encoders forced to float32 (`RAG_*_PRECISION=float32`);
- `ours`: this pipeline with its settings as they are (`auto`: the fastest format that kept the rankings here).

Prints, and writes as JSON with `--json`:
- ingest: chunks per second for the first `--docs` SciFact abstracts, each pipeline into a fresh store, repeated
  `--rounds` times with the order rotated so that none profits from going first or last (warm caches, warmed
  encoder); ours through `Library.ingest_many`, the path of the Documents page and of `python -m rag ingest`;
- query path for N = 10, 20, 50 candidates: retrieve, rerank to 3, both together (p50 / p95 over `--questions`
  SciFact claims, the pipelines interleaved question by question, in a rotating order), and for ours the first
  answer token and the full answer from the LLM over Ollama's HTTP API (`--answers` questions per N);
- speed-up ratios of ours (default) against the textbook at its best format on this CPU (the headline), against the
  textbook's default, and ours against the textbook both in float32.

Run: `scripts/run-bench.sh speed [--docs 1000] [--questions 20] [--rounds 2] [--answers 5] [--per-file]
[--all-formats] [--json FILE]`.
The cross-encoder is the one trained for this project (`--reranker`), with ms-marco-MiniLM-L6-v2's architecture and
so its cost per pair; the LLM is RAG_OLLAMA_URL if it answers, else the stand-in server.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, SCIFACT, cpu_description, llm_settings, p50_p95  # noqa: E402
from rag.documents.library import Library, expand_paths  # noqa: E402
from rag.evaluation.retrieval_eval import load_beir  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.retrieval.embeddings import load_bi_encoder  # noqa: E402
from rag.retrieval.rerank import load_cross_encoder  # noqa: E402
from rag.retrieval.store import Store  # noqa: E402
from rag.settings import Settings  # noqa: E402

N_VALUES = (10, 20, 50)
TEXTBOOK = ("textbook-float32", "textbook-bfloat16")
OURS = ("ours-float32", "ours")


def ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class Ours:
    """This pipeline, its encoders loaded once; `fresh_store` opens a new empty store with them."""

    def __init__(self, settings: Settings, scratch: Path) -> None:
        self.settings, self.scratch, self.stores = settings, scratch, 0
        start = time.perf_counter()
        self.embedder = load_bi_encoder(settings)
        self.cross = load_cross_encoder(settings)
        self.load_s = ms(start) / 1000
        self.format = f"bi-encoder {self.embedder.format}, cross-encoder {self.cross.format}"
        self.pipeline = self.fresh_store()

    def fresh_store(self) -> Pipeline:
        self.stores += 1
        settings = self.settings.model_copy(update={"chroma_path": self.scratch / f"chroma-{self.stores}"})
        self.pipeline = Pipeline(settings, Store(settings, self.embedder), self.cross)
        return self.pipeline

    def ingest(self, files: list[tuple[str, bytes]]) -> int:
        outcomes = self.fresh_store().library.ingest_many(files)
        return sum(o.chunks for o in outcomes if o.status == "added")

    def ingest_per_file(self, files: list[tuple[str, bytes]]) -> int:
        """One `ingest_bytes` per file (how the Documents page added an upload's files before it used ingest_many)."""
        library = self.fresh_store().library
        return sum(o.chunks for o in (library.ingest_bytes(n, d) for n, d in files) if o.status == "added")

    def ask(self, question: str, n: int):
        return self.pipeline.retrieve(question, rerank=True, candidates=n, keep=3)


class Textbook:
    """The textbook pipeline in one number format; `ingest` builds a new Chroma folder with `Chroma.from_documents`."""

    def __init__(self, textbook, embedder_path: str, reranker: str, dtype, scratch: Path) -> None:
        self.textbook, self.scratch, self.stores = textbook, scratch, 0
        start = time.perf_counter()
        self.embeddings = textbook.load_embeddings(embedder_path, dtype)
        self.cross = textbook.load_cross_encoder(reranker, dtype)
        self.load_s = ms(start) / 1000
        self.format = f"both encoders {str(dtype or 'torch.float32').removeprefix('torch.')}"
        self.store = None
        self.retrievers: dict[int, object] = {}

    def ingest(self, files: list[tuple[str, bytes]]) -> int:
        tb = self.textbook
        self.stores += 1
        chunks = tb.split([tb.Document(page_content=data.decode(), metadata={"source": name}) for name, data in files])
        self.store = tb.index(chunks, self.embeddings, self.scratch / f"chroma-{self.stores}")
        self.retrievers = {}
        return len(chunks)

    def ask(self, question: str, n: int):
        if n not in self.retrievers:
            self.retrievers[n] = self.textbook.reranking_retriever(self.store, self.cross, candidates=n)
        return self.retrievers[n].invoke(question)


def time_ingest(pipelines: dict, documents: list[tuple[str, bytes]], rounds: int, per_file: bool) -> dict:
    """Each pipeline ingests the documents into a fresh store `rounds` times, the order rotated every round.
    With `per_file`, ours (default) also ingests them a file at a time (`ours per-file`)."""
    names = list(pipelines)
    samples = [(p.name, p.read_bytes()) for p in expand_paths([REPO / "data"])]
    for name in names:  # warm-up: each encoder and Chroma have run once before anything is timed
        pipelines[name].ingest(samples if name in OURS else documents[:20])
    chunks: dict[str, int] = {}
    runs = {name: pipelines[name].ingest for name in names}
    if per_file:
        runs["ours per-file"] = pipelines["ours"].ingest_per_file
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            chunks[name] = runs[name](documents)
            seconds[name].append(time.perf_counter() - start)
            print(f"ingest round {r + 1}: {name} {chunks[name]} chunks in {seconds[name][-1]:.1f} s", flush=True)
    return {name: {"chunks": chunks[name], "seconds": [round(s, 1) for s in seconds[name]],
                   "chunks_per_s": round(chunks[name] / statistics.median(seconds[name]), 1)} for name in names}


def time_queries(pipelines: dict, questions: list[str]) -> dict:
    """Retrieve + rerank to 3 for each N, the pipelines interleaved question by question in a rotating order."""
    names = list(pipelines)
    report = {}
    for n in N_VALUES:
        for q in questions[:2]:  # warm-up
            for name in names:
                pipelines[name].ask(q, n)
        times: dict[str, list[float]] = {}
        for i, q in enumerate(questions):
            for name in names[i % len(names):] + names[: i % len(names)]:
                p = pipelines[name]
                if name in TEXTBOOK:
                    start = time.perf_counter()
                    p.store.similarity_search(q, k=n)
                    times.setdefault(f"{name} retrieve", []).append(ms(start))
                start = time.perf_counter()
                result = p.ask(q, n)
                times.setdefault(f"{name} retrieve+rerank", []).append(ms(start))
                if name in OURS:
                    times.setdefault(f"{name} retrieve", []).append(result.timings.retrieve_ms)
                    times.setdefault(f"{name} rerank", []).append(result.timings.rerank_ms)
        report[n] = {k: p50_p95(v) for k, v in sorted(times.items())}
        print(f"N={n}: " + "; ".join(f"{k} {v['p50']:.0f}/{v['p95']:.0f}" for k, v in report[n].items()), flush=True)
    return report


def time_answers(ours: Ours, questions: list[str], count: int) -> dict:
    report = {}
    with llm_settings(ours.settings) as llm:
        pipeline = ours.pipeline
        # Threshold off: every question goes to the LLM, which is what is timed here.
        pipeline.settings = pipeline.settings.model_copy(update={**llm, "min_rerank_score": 0.0})
        for n in N_VALUES:
            first, full = [], []
            for q in questions[:count]:
                start = time.perf_counter()
                answer = pipeline.ask(q, candidates=n, keep=3)
                for i, _ in enumerate(answer.tokens):
                    if i == 0:
                        first.append(ms(start))
                full.append(ms(start))
            report[n] = {"first token": p50_p95(first), "full answer": p50_p95(full), "model": llm["ollama_model"]}
            print(f"N={n}: first token {report[n]['first token']}, full {report[n]['full answer']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000, help="SciFact abstracts to index (5183 = all)")
    parser.add_argument("--questions", type=int, default=20, help="SciFact claims asked per N")
    parser.add_argument("--rounds", type=int, default=2, help="ingests per pipeline (order rotated each round)")
    parser.add_argument("--answers", type=int, default=5, help="of those, answered by the LLM (ours only; 0: none)")
    parser.add_argument("--per-file", action="store_true",
                        help="also time ours ingesting one file at a time (the Documents page's path)")
    parser.add_argument("--all-formats", action="store_true",
                        help="time the textbook in bfloat16 also where this CPU only emulates it")
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    import torch

    from bench import textbook
    from rag.encoders.models import resolve_model, torch_dtype

    scifact = load_beir(SCIFACT)  # the first --docs abstracts, and every test claim
    documents, queries = scifact.documents[: args.docs], list(scifact.questions.values())
    questions = queries[: args.questions]
    scratch = Path(tempfile.mkdtemp(prefix="rag-speed-"))
    base = Settings().model_copy(update={"reranker_model": args.reranker, "chroma_host": None})
    float32 = base.model_copy(update={"embedding_precision": "float32", "reranker_precision": "float32"})

    # -- models (loading is not part of any timing below)
    embedder_path = resolve_model(base.embedding_model)
    pipelines = {"textbook-float32": Textbook(textbook, embedder_path, args.reranker, None, scratch / "tb32")}
    if args.all_formats or torch_dtype("auto", "cpu") == torch.bfloat16:
        pipelines["textbook-bfloat16"] = Textbook(textbook, embedder_path, args.reranker, torch.bfloat16,
                                                  scratch / "tb16")
    else:
        print("textbook-bfloat16: not timed (this CPU emulates bfloat16; --all-formats times it)", flush=True)
    pipelines |= {"ours-float32": Ours(float32, scratch / "ours32"), "ours": Ours(base, scratch / "ours")}
    for name, p in pipelines.items():
        print(f"{name}: {p.format}; models loaded in {p.load_s:.1f} s", flush=True)
    report: dict = {"docs": args.docs, "questions": len(questions), "reranker": args.reranker,
                    "cpu": cpu_description(), "python": platform.python_version(),
                    "formats": {name: p.format for name, p in pipelines.items()}}
    report["ingest"] = time_ingest(pipelines, documents, args.rounds, args.per_file)
    report["query"] = time_queries(pipelines, questions)
    report["answer"] = time_answers(pipelines["ours"], questions, args.answers) if args.answers else {}
    report["ratios"] = ratios(report)
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def ratios(report: dict) -> dict:
    """How many times faster ours is: against the textbook at its best format here (the headline), against the
    textbook's default (float32), and both pipelines in float32."""
    ingest = {k: v["chunks_per_s"] for k, v in report["ingest"].items()}
    textbook = [k for k in TEXTBOOK if k in ingest]  # bfloat16 is left out where the CPU emulates it
    best_ingest = max(textbook, key=lambda k: ingest[k])
    out = {"ingest": {"textbook best format": best_ingest,
                      "ours / textbook at its best": round(ingest["ours"] / ingest[best_ingest], 2),
                      "ours / textbook default": round(ingest["ours"] / ingest["textbook-float32"], 2),
                      "ours float32 / textbook float32": round(ingest["ours-float32"] / ingest["textbook-float32"], 2)}}
    for n, t in report["query"].items():
        p50 = {k: t[f"{k} retrieve+rerank"]["p50"] for k in (*textbook, *OURS)}
        best = min(textbook, key=lambda k: p50[k])
        out[f"retrieve+rerank N={n}"] = {
            "textbook best format": best,
            "ours / textbook at its best": round(p50[best] / p50["ours"], 2),
            "ours / textbook default": round(p50["textbook-float32"] / p50["ours"], 2),
            "ours float32 / textbook float32": round(p50["textbook-float32"] / p50["ours-float32"], 2),
        }
    return out


def render(report: dict) -> str:
    lines = [f"", f"CPU: {report['cpu']}", "", "| pipeline | number formats |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["formats"].items()]
    lines += ["", "| ingest | chunks | seconds per round | chunks/s (median round) |", "|---|---|---|---|"]
    for name, r in report["ingest"].items():
        lines.append(f"| {name} | {r['chunks']} | {', '.join(map(str, r['seconds']))} | {r['chunks_per_s']} |")
    lines += ["", "| query path, ms p50 / p95 | " + " | ".join(f"N={n}" for n in report["query"]) + " |",
              "|---|" + "---|" * len(report["query"])]
    stages = list(next(iter(report["query"].values())))
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(f"{t[stage]['p50']:.0f} / {t[stage]['p95']:.0f}"
                                                  for t in report["query"].values()) + " |")
    if report["answer"]:
        model = next(iter(report["answer"].values()))["model"]
        for part in ("first token", "full answer"):
            lines.append(f"| ours {part} (LLM {model}) | " + " | ".join(
                f"{a[part]['p50']:.0f} / {a[part]['p95']:.0f}" for a in report["answer"].values()) + " |")
    keys = ("ours / textbook at its best", "ours / textbook default", "ours float32 / textbook float32")
    lines += ["", "| speed-up (x) | textbook's best format here | " + " | ".join(keys) + " |",
              "|---|---|" + "---|" * len(keys)]
    for what, r in report["ratios"].items():
        lines.append(f"| {what} | {r['textbook best format']} | " + " | ".join(str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
