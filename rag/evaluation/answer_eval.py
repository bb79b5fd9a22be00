"""Answers measured end to end: `python -m rag eval --answers QA.jsonl --docs DIR [--unanswerable FILE ...]`.

The documents are indexed into a temporary store through the normal ingest; every question is asked through
`Pipeline.ask`, the same path as the app, with the configured LLM. Per mode (`dense`, `rerank`, `hybrid`,
`hybrid-rerank`), on the answerable file:
  contains_gold       the answer contains a gold answer (both normalised as SQuAD does)
  f1                  SQuAD token F1 against the best gold answer
  gold_sent           a chunk sent to the LLM contains a gold answer (the ceiling retrieval sets)
  cited               answers with at least one citation shown (the model's or an attributed one)
  citations_correct   shown citations whose chunk contains a gold answer
  correct_cited_right correct answers with a citation whose chunk contains a gold answer
  evidence_top_gold   the top highlighted sentence contains a gold answer, where a sent chunk contains one
  wrongly_declined    answerable questions declined (by the gate or by the model)
and on each unanswerable file the share declined; first token and full answer p50 / p95.
"""

from __future__ import annotations

import collections
import math
import re
import statistics
import string
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..answers.declines import not_covered
from ..answers.evidence import best_evidence
from ..errors import RagError
from ..results import Answer
from ..settings import Settings
from .metrics import percentile
from .retrieval_eval import _read_jsonl, read_documents, read_qa

# The target for the not-covered gate: answer at least this share of the answerable questions.
TARGET_THROUGH = 0.9
MODES = {"dense": (False, False), "rerank": (True, False), "hybrid": (False, True), "hybrid-rerank": (True, True)}
ANSWER_METRICS = ("contains_gold", "f1", "gold_sent", "cited", "citations_correct", "correct_cited_right",
                  "evidence_top_gold", "wrongly_declined")


# -- SQuAD's answer normalisation and token F1 (its official evaluation script's definitions)

def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """A gold answer's normalised words appear, as whole words, in the normalised text."""
    padded = f" {normalize_answer(text)} "
    return any(normalize_answer(a) and f" {normalize_answer(a)} " in padded for a in answers)


def token_f1(prediction: str, answers: Iterable[str]) -> float:
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for gold in answers:
        wanted = normalize_answer(gold).split()
        common = collections.Counter(predicted) & collections.Counter(wanted)
        same = sum(common.values())
        if same and predicted and wanted:
            precision, recall = same / len(predicted), same / len(wanted)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# -- the test set

@dataclass
class AnswerSet:
    """Answerable questions with gold answers, unanswerable files by name, and the documents."""

    name: str
    documents: list[tuple[str, bytes]]
    answerable: list[tuple[str, list[str]]]
    unanswerable: dict[str, list[str]] = field(default_factory=dict)

    def limit(self, n: int | None, offset: int = 0) -> None:
        """Questions offset+1 .. offset+n of each file (squad2-dev's files are in random order, so these are a
        sample; an offset keeps a calibration sample apart from an evaluation one)."""
        end = None if n is None else offset + n
        self.answerable = self.answerable[offset:end]
        self.unanswerable = {k: v[offset:end] for k, v in self.unanswerable.items()}


def load_answer_set(qa_file: Path, docs: Path, unanswerable: Iterable[Path] = ()) -> AnswerSet:
    """QA.jsonl lines {"question", "answers": [...]} (or "answer"); unanswerable files need only "question"."""
    for path in unanswerable:
        if not path.is_file():
            raise RagError(f"no such file: {path}")
    answerable = read_qa(qa_file)
    others = {}
    for path in unanswerable:
        questions = [str(item.get("question") or "") for item in _read_jsonl(path)]
        if not all(questions):
            raise RagError(f"{path}: every line needs a question")
        others[path.stem] = questions
    return AnswerSet(qa_file.stem, read_documents(docs), answerable, others)


# -- one answer, judged

def judge(answer: Answer, gold: list[str] | None) -> dict:
    """What one answer did; `gold` is None for a question the documents do not answer."""
    sent = {s.number: s for s in answer.sources}
    shown = sorted({n for s in answer.sentences for n in (s.attributed or s.cited)} | set(answer.citations))
    top = best_evidence(answer.evidence)
    record = {
        "question": answer.question, "outcome": answer.outcome, "answer": answer.text,
        "declined": answer.outcome != "answered",
        "model_cited": bool(answer.citations), "cited": bool(shown), "citations": shown,
        "unsupported_sentences": sum(not s.supported for s in answer.sentences),
        **_times(answer),
        "best_rerank_score": answer.ranking.best_rerank_score, "best_bi_score": answer.ranking.best_bi_score,
        "top_evidence": top.text if top else None,
        "sources": [{"number": s.number, "location": s.location, "text": s.text} for s in answer.sources],
        "sentences": [s.to_dict() for s in answer.sentences],
    }
    if gold is not None:
        holds = {n for n, s in sent.items() if contains_answer(s.text, gold)}
        correct = answer.outcome == "answered" and contains_answer(answer.text, gold)
        record.update(
            gold=gold, contains_gold=correct, f1=token_f1(answer.text, gold) if answer.outcome == "answered" else 0.0,
            gold_sent=bool(holds), citations_correct=[n in holds for n in shown],
            correct_cited_right=bool(holds & set(shown)) if correct else None,
            evidence_top_gold=(contains_answer(top.text, gold) if top else False) if holds else None,
        )
    return record


def _share(values: Iterable) -> float:
    """The mean of the values that are not None (True counts 1), to four decimals; nan when there are none."""
    values = [v for v in values if v is not None]
    return round(statistics.fmean(values), 4) if values else float("nan")


def summarise_gate(records: list[dict], unanswerable: dict[str, list[dict]]) -> dict:
    """The shares the gate alone declines (no LLM was called)."""
    return {"wrongly_declined": _share(r["declined"] for r in records),
            "declined": {name: _share(r["declined"] for r in g) for name, g in unanswerable.items()}}


def _times(answer: Answer) -> dict:
    """Each stage's milliseconds, and first token / full answer counted from the question (as a user waits)."""
    t = answer.timings
    before = sum(v or 0.0 for v in (t.rewrite_ms, t.retrieve_ms, t.rerank_ms, t.evidence_ms))
    return {"retrieve_ms": t.retrieve_ms, "rerank_ms": t.rerank_ms, "evidence_ms": t.evidence_ms,
            "llm_first_token_ms": t.first_token_ms,
            "first_token_ms": None if t.first_token_ms is None else round(before + t.first_token_ms, 1),
            "answer_ms": None if t.answer_ms is None else round(before + t.answer_ms, 1)}


# The ways of not answering (`Answer.outcome`): the gate before the LLM, the model's decline, the answer that no
# sent chunk supports.
DECLINE_KINDS = ("not_covered", "declined", "unsupported")


def summarise(records: list[dict], unanswerable: dict[str, list[dict]]) -> dict:
    answered = [r for r in records if not r["declined"]]
    timed = [r for group in [records, *unanswerable.values()] for r in group if r["first_token_ms"] is not None]
    return {
        "contains_gold": _share([r["contains_gold"] for r in records]),
        "f1": _share([r["f1"] for r in records]),
        "gold_sent": _share([r["gold_sent"] for r in records]),
        "cited": _share([r["cited"] for r in answered]),
        "model_cited": _share([r["model_cited"] for r in answered]),
        "citations_correct": _share([ok for r in records for ok in r["citations_correct"]]),
        "correct_cited_right": _share([r["correct_cited_right"] for r in records]),
        "evidence_top_gold": _share([r["evidence_top_gold"] for r in records]),
        "wrongly_declined": _share([r["declined"] for r in records]),
        "declined": {name: _share([r["declined"] for r in group]) for name, group in unanswerable.items()},
        "declined_by": {name: {kind: _share([r["outcome"] == kind for r in group]) for kind in DECLINE_KINDS}
                        for name, group in {"answerable": records, **unanswerable}.items()},
        "first_token_ms": _p50_p95([r["first_token_ms"] for r in timed]),
        "answer_ms": _p50_p95([r["answer_ms"] for r in timed]),
        "stages_ms_p50": {stage: _p50_p95([r[stage] for r in timed if r[stage] is not None]).get("p50")
                          for stage in ("retrieve_ms", "rerank_ms", "evidence_ms", "llm_first_token_ms")},
    }


def calibrate_gate(records: list[dict], unanswerable: dict[str, list[dict]], key: str,
                   through_at_least: float = TARGET_THROUGH) -> dict | None:
    """Two gate thresholds on `key` (best_rerank_score or best_bi_score), with the share of each unanswerable file
    that each stops (thresholds rounded down to two decimals):

    - `threshold`, the balanced one: it maximises the smaller of (answerable questions let through, questions of
      the first unanswerable file stopped);
    - `for_target`, the highest threshold that still lets `through_at_least` of the answerable questions through
      (the issue's target: decline off-corpus questions while answering at least 90% of answerable ones).
    """
    scores = [r[key] for r in records if r[key] is not None]
    first = next(iter(unanswerable.values()), [])
    others = [r[key] for r in first if r[key] is not None]
    if not scores:
        return None

    def through(t: float) -> float:
        return sum(s >= t for s in scores) / len(scores)

    def stopped(t: float) -> float:
        return sum(s < t for s in others) / len(others) if others else 0.0

    def stops(t: float) -> dict[str, float]:
        return {name: round(statistics.fmean(r[key] is not None and r[key] < t for r in group), 4)
                for name, group in unanswerable.items() if group}

    candidates = sorted({math.floor(s * 100) / 100 for s in scores + others})
    threshold = max(candidates, key=lambda t: (min(through(t), stopped(t)), through(t)))
    target = max(t for t in candidates + [0.0] if through(t) >= through_at_least)
    return {"score": key, "threshold": threshold, "answerable_through": round(through(threshold), 4),
            "stopped": stops(threshold),
            "for_target": {"through_at_least": through_at_least, "threshold": target,
                           "answerable_through": round(through(target), 4), "stopped": stops(target)}}


def _p50_p95(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1)} if values else {}


@dataclass
class AnswerReport:
    test_set: str
    documents: int
    chunks: int
    llm: str
    reranker: str | None  # None when no mode reranked: no cross-encoder ran
    context: str
    results: list[dict]
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def table(self) -> str:
        names = sorted({n for r in self.results for n in r["answers"]["declined"]})
        if self.results and "contains_gold" not in self.results[0]["answers"]:
            return self._gate_table(names)
        head = ("| mode | contains gold | F1 | gold sent | cited | citations right | correct & cited right | "
                "evidence top gold | wrongly declined | " + " | ".join(f"declined: {n}" for n in names)
                + " | first token ms p50 / p95 | answer ms p50 / p95 |")
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for r in self.results:
            a = r["answers"]
            cells = [f"{a[m]:.2f}" for m in ANSWER_METRICS] + [f"{a['declined'][n]:.2f}" for n in names]
            cells += [f"{t['p50']:.0f} / {t['p95']:.0f}" if t else "" for t in (a["first_token_ms"], a["answer_ms"])]
            lines.append(f"| {r['mode']} | " + " | ".join(cells) + " |")
        for r in self.results:
            by = r["answers"].get("declined_by")  # absent from reports written before the unsupported outcome
            if by:
                lines.append(f"{r['mode']}: declined by the gate / the model / as unsupported: " + "; ".join(
                    f"{name} " + " / ".join(f"{shares[k]:.0%}" for k in DECLINE_KINDS) for name, shares in by.items()))
        for r in self.results:
            stages = ", ".join(f"{k.removesuffix('_ms').replace('_', ' ')} {v:.0f}" for k, v in
                               r["answers"]["stages_ms_p50"].items() if v is not None)
            lines.append(f"{r['mode']}: until the first token, p50 ms: {stages}")
        return "\n".join(lines + _gate_lines(self.results))

    def _gate_table(self, names: list[str]) -> str:
        head = "| mode (gate only, no LLM) | wrongly declined | " + " | ".join(f"declined: {n}" for n in names) + " |"
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for r in self.results:
            a = r["answers"]
            cells = [f"{a['wrongly_declined']:.3f}"] + [f"{a['declined'][n]:.3f}" for n in names]
            lines.append(f"| {r['mode']} | " + " | ".join(cells) + " |")
        return "\n".join(lines + _gate_lines(self.results))


def _gate_lines(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        gate = r.get("gate_calibration")
        if not gate:
            continue
        target = gate.get("for_target")  # absent from reports written before it existed
        for what, g in (("balanced", gate), (target and f"letting >= {target['through_at_least']:.0%} through", target)):
            if g:
                stopped = ", ".join(f"{v:.0%} of {k}" for k, v in g["stopped"].items())
                lines.append(f"{r['mode']}: a gate at {gate['score']} >= {g['threshold']} ({what}) would let "
                             f"{g['answerable_through']:.0%} of the answerable questions through and stop {stopped}")
    return lines


def evaluate_answers(
    test: AnswerSet, settings: Settings, pipeline_factory: Callable[[Settings], object],
    modes: Iterable[str] = ("dense", "rerank"),
    progress: Callable[[int, str], Callable[[], None]] | None = None, index_dir: Path | None = None,
    gate_only: bool = False,
) -> AnswerReport:
    """Index the documents into a scratch store (or `index_dir`, kept), then ask every question in every mode.

    `gate_only`: retrieve and apply the not-covered gate, without calling the LLM: only the declines by the gate
    and the gate's calibration are measured (fast, for calibrating a threshold on many questions).
    """
    modes = list(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise RagError(f"unknown mode {', '.join(unknown)}; choose from {', '.join(MODES)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rag-answers-") as scratch:
        folder = index_dir or Path(scratch)
        local = settings.model_copy(update={"chroma_path": Path(folder) / "chroma", "chroma_host": None,
                                            "collection": "evaluation"})
        pipeline = pipeline_factory(local)
        try:
            outcomes = pipeline.library.ingest_many(test.documents)
            if all(o.status == "rejected" for o in outcomes):
                raise RagError(f"no document of {test.name} could be indexed: {outcomes[0].reason}")
            chunks = pipeline.store.count_chunks()
            total = (len(test.answerable) + sum(map(len, test.unanswerable.values()))) * len(modes)
            step = progress(total, "answering") if progress else (lambda: None)
            results = []
            for mode in modes:
                rerank, hybrid = MODES[mode]

                def ask(question: str, gold: list[str] | None) -> dict:
                    if gate_only:
                        ranking = pipeline.retrieve(question, rerank=rerank, hybrid=hybrid)
                        step()
                        return {"question": question, "declined": not_covered(ranking, pipeline.settings) is not None,
                                "best_rerank_score": ranking.best_rerank_score,
                                "best_bi_score": ranking.best_bi_score}
                    answer = pipeline.ask(question, rerank=rerank, hybrid=hybrid)
                    answer.consume()
                    step()
                    return judge(answer, gold)

                records = [ask(q, gold) for q, gold in test.answerable]
                others = {name: [ask(q, None) for q in questions] for name, questions in test.unanswerable.items()}
                gate_key = "best_rerank_score" if rerank else ("best_bi_score" if not hybrid else None)
                summary = summarise_gate(records, others) if gate_only else summarise(records, others)
                results.append({"mode": mode, "answers": summary,
                                "gate_calibration": calibrate_gate(records, others, gate_key) if gate_key else None,
                                "per_question": {"answerable": records, **others}})
        finally:
            pipeline.store.close()
    return AnswerReport(test.name, len(test.documents), chunks, f"{local.ollama_model} at {local.ollama_url}",
                        local.reranker_model if any(MODES[m][0] for m in modes) else None, local.context, results,
                        round(time.perf_counter() - started, 1))
