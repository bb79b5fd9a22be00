"""Retrieval evaluation with the project's own pipeline: BEIR folders, QA files, and the same metrics for each mode.

A test set is indexed into a temporary collection through the normal ingest (loaders, splitter, store), then
every question is ranked through `Pipeline.retrieve`, in each mode:
  dense          the bi-encoder's order               rerank         dense candidates, cross-encoder order
  hybrid         bi-encoder + BM25, fused by rank     hybrid-rerank  hybrid candidates, cross-encoder order
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..documents.library import clean_name, expand_paths
from ..errors import RagError
from ..results import Ranking, Source
from ..settings import Settings
from .metrics import dedupe, mrr_at_k, ndcg_at_k, percentile, recall_at_k

MODES = ("dense", "rerank", "hybrid", "hybrid-rerank")
Level = Literal["doc", "chunk"]
METRICS = ("ndcg@10", "ndcg@3", "recall@3", "recall@10", "recall@100", "mrr@10")


@dataclass
class TestSet:
    """Documents to index, questions, and how to tell a relevant result.

    BEIR: `qrels` maps a question id to {document name: grade}. QA: `answers` maps a question id to answer strings;
    a chunk is relevant when it contains one (case and whitespace ignored).
    """

    name: str
    documents: list[tuple[str, bytes]]
    questions: dict[str, str]
    qrels: dict[str, dict[str, float]] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)


def _read_jsonl(path: Path) -> Iterable[dict]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RagError(f"{path}:{number} is not valid JSON ({exc.msg})") from exc


def load_beir(folder: Path, split: str = "test") -> TestSet:
    """corpus.jsonl (`_id`, `title`, `text`), queries.jsonl (`_id`, `text`), qrels/<split>.tsv."""
    corpus, queries, qrels_file = folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"
    for needed in (corpus, queries, qrels_file):
        if not needed.is_file():
            raise RagError(f"not a BEIR folder: {needed} is missing")
    qrels: dict[str, dict[str, float]] = {}
    for line in qrels_file.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) >= 3 and float(parts[2]) > 0:
            qrels.setdefault(parts[0], {})[clean_name(parts[1])] = float(parts[2])
    # Title and text joined by a space, as MTEB and BEIR embed documents.
    documents = [(d["_id"], f"{d.get('title', '')} {d['text']}".strip().encode("utf-8")) for d in _read_jsonl(corpus)]
    questions = {q["_id"]: q["text"] for q in _read_jsonl(queries) if q["_id"] in qrels}
    return TestSet(folder.name, documents, questions, qrels=qrels)


def read_qa(qa_file: Path) -> list[tuple[str, list[str]]]:
    """(question, answer strings) per line of a QA.jsonl: {"question": ..., "answers": [...]} (or "answer")."""
    if not qa_file.is_file():
        raise RagError(f"no such file: {qa_file}")
    pairs = []
    for number, item in enumerate(_read_jsonl(qa_file), start=1):
        given = item.get("answers", item.get("answer"))
        given = [given] if isinstance(given, str) else list(given or [])
        if not item.get("question") or not given:
            raise RagError(f"{qa_file}:{number} needs a question and at least one answer")
        pairs.append((str(item["question"]), [str(a) for a in given]))
    return pairs


def read_documents(docs: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file in a folder (or of one file); an empty folder is an error."""
    documents = [(p.name, p.read_bytes()) for p in expand_paths([docs])]
    if not documents:
        raise RagError(f"no documents in {docs}")
    return documents


def load_qa(qa_file: Path, docs: Path) -> TestSet:
    """QA.jsonl lines {"question": ..., "answers": [...]} (or "answer"), over the documents in a folder."""
    pairs = read_qa(qa_file)
    questions = {str(n): q for n, (q, _) in enumerate(pairs, start=1)}
    answers = {str(n): a for n, (_, a) in enumerate(pairs, start=1)}
    return TestSet(qa_file.stem, read_documents(docs), questions, answers=answers)


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class ModeResult:
    mode: str
    metrics: dict[str, float]
    stage_ms: dict[str, dict[str, float]]
    per_question: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "metrics": self.metrics, "stage_ms": self.stage_ms,
                "per_question": self.per_question}


@dataclass
class Report:
    test_set: str
    level: Level
    candidates: int
    documents: int
    chunks: int
    questions: int
    embedder: str
    reranker: str | None  # None when no mode reranked: no cross-encoder ran
    index_seconds: float
    results: list[ModeResult]
    rank_seconds: float = 0.0
    precision: str = ""  # the number formats the encoders ran in, e.g. "bfloat16 / bfloat16"

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "results"}
        data["results"] = [r.to_dict() for r in self.results]
        return data

    def table(self) -> str:
        head = "| mode | " + " | ".join(METRICS) + " | first stage ms p50 / p95 | rerank ms p50 / p95 |"
        lines = [head, "|" + "---|" * (len(METRICS) + 3)]
        for r in self.results:
            stages = []
            for stage in ("retrieve", "rerank"):
                t = r.stage_ms.get(stage)
                stages.append(f"{t['p50']:.0f} / {t['p95']:.0f}" if t else "")
            lines.append(f"| {r.mode} | " + " | ".join(f"{r.metrics[m]:.3f}" for m in METRICS) + " | "
                         + " | ".join(stages) + " |")
        return "\n".join(lines)


def relevant_for(test: TestSet, qid: str, level: Level, chunks: dict[str, tuple[str, str]]) -> dict[str, float]:
    """What counts as relevant for one question: documents (BEIR, doc level) or chunk ids."""
    if test.answers:
        wanted = [_squash(a) for a in test.answers[qid]]
        return {cid: 1.0 for cid, (_, text) in chunks.items() if any(w in text for w in wanted)}
    judged = test.qrels.get(qid, {})
    if level == "doc":
        return judged
    return {cid: judged[name] for cid, (name, _) in chunks.items() if name in judged}


def score_ranking(order: list[Source], relevant: dict[str, float], level: Level) -> dict[str, float]:
    ids = dedupe([s.file for s in order]) if level == "doc" else [s.chunk_id for s in order]
    return {
        "ndcg@10": ndcg_at_k(ids, relevant, 10), "ndcg@3": ndcg_at_k(ids, relevant, 3),
        "recall@3": recall_at_k(ids, relevant, 3), "recall@10": recall_at_k(ids, relevant, 10),
        "recall@100": recall_at_k(ids, relevant, 100), "mrr@10": mrr_at_k(ids, relevant, 10),
    }


def evaluate(
    test: TestSet, settings: Settings, pipeline_factory: Callable[[Settings], "object"],
    modes: Iterable[str] = MODES, level: Level = "doc", candidates: int = 100,
    progress: Callable[[int, str], Callable[[], None]] | None = None, index_dir: Path | None = None,
) -> Report:
    """Index `test` into a temporary store and rank every question in every mode.

    `pipeline_factory(settings)` builds the Pipeline (the CLI passes the real one). `progress(total, label)` returns
    a function to call once per step (the CLI draws a bar with it). With `index_dir` the index is kept there and
    reused by the next run (ingest is idempotent, so only what changed is embedded again).
    """
    import time

    modes = list(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise RagError(f"unknown mode {', '.join(unknown)}; choose from {', '.join(MODES)}")
    if test.answers and level == "doc":
        level = "chunk"  # answers are judged per chunk
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as scratch:
        folder = index_dir or Path(scratch)
        local = settings.model_copy(update={"chroma_path": Path(folder) / "chroma", "chroma_host": None,
                                            "collection": "evaluation", "max_file_mb": max(settings.max_file_mb, 200)})
        pipeline = pipeline_factory(local)
        try:
            step = progress(len(test.documents), "indexing") if progress else (lambda: None)
            start = time.perf_counter()
            outcomes = pipeline.library.ingest_many(test.documents, on_file=lambda _: step())
            index_seconds = time.perf_counter() - start
            rejected = [o for o in outcomes if o.status == "rejected"]
            if len(rejected) == len(outcomes):
                raise RagError(f"no document of {test.name} could be indexed: {rejected[0].reason}")
            chunks = {d.id: (d.metadata["source"], _squash(d.page_content)) for d in pipeline.store.get_chunks()}
            start = time.perf_counter()
            results = _rank_all(test, pipeline, modes, level, candidates, chunks, progress)
            rank_seconds = time.perf_counter() - start
            reranked = any("rerank" in m for m in modes)
            models = [pipeline.store.embedder, *([pipeline.cross_encoder()] if reranked else [])]
            # `format` names int8 too; `dtype` is the torch format of encoders that have no `format`.
            precision = " / ".join(str(getattr(m, "format", None) or getattr(m, "dtype", "?")).removeprefix("torch.")
                                   for m in models)
        finally:
            pipeline.store.close()
    return Report(test.name, level, candidates, len(test.documents) - len(rejected), len(chunks),
                  len(test.questions), local.embedding_model, local.reranker_model if reranked else None,
                  round(index_seconds, 1), results,
                  rank_seconds=round(rank_seconds, 1), precision=precision)


def _rank_all(test, pipeline, modes, level, candidates, chunks, progress) -> list[ModeResult]:
    per_mode: dict[str, dict[str, dict[str, float]]] = {m: {} for m in modes}
    times: dict[str, dict[str, list[float]]] = {m: {"retrieve": [], "rerank": []} for m in modes}
    # One retrieval per first stage serves both its plain and its reranked mode (the same candidate pool).
    stages = []
    if "dense" in modes or "rerank" in modes:
        stages.append((False, "rerank" in modes))
    if "hybrid" in modes or "hybrid-rerank" in modes:
        stages.append((True, "hybrid-rerank" in modes))
    step = progress(len(test.questions) * len(stages), "ranking") if progress else (lambda: None)
    # A chunk in both the dense and the hybrid pool is scored once (rerank time of the second pool is then lower).
    remembered = pipeline.remember_scores()
    for qid, question in test.questions.items():
        remembered.forget()
        relevant = relevant_for(test, qid, level, chunks)
        for hybrid, rerank in stages:
            ranking: Ranking = pipeline.retrieve(question, rerank=rerank, candidates=candidates, keep=3,
                                                 hybrid=hybrid)
            first, second = ("hybrid", "hybrid-rerank") if hybrid else ("dense", "rerank")
            if first in per_mode:
                per_mode[first][qid] = score_ranking(ranking.candidates, relevant, level)
                times[first]["retrieve"].append(ranking.timings.retrieve_ms)
            if second in per_mode:
                per_mode[second][qid] = score_ranking(ranking.reranked_order, relevant, level)
                times[second]["retrieve"].append(ranking.timings.retrieve_ms)
                times[second]["rerank"].append(ranking.timings.rerank_ms)
            step()
    results = []
    for mode in modes:
        scores = per_mode[mode]
        metrics = {m: statistics.fmean(s[m] for s in scores.values()) if scores else 0.0 for m in METRICS}
        stage_ms = {stage: {"p50": percentile(v, 50), "p95": percentile(v, 95)}
                    for stage, v in times[mode].items() if v}
        results.append(ModeResult(mode, metrics, stage_ms, scores))
    return results
