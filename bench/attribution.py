"""How to attribute an answer's sentences to the chunks sent, and how to pick the evidence sentence: measured.

Reads the JSON that `python -m rag eval --answers ... --json FILE` wrote (each answer with its question, gold
answers and the chunks sent) and, with the configured encoders, for each attribution rule (`rag.answers.evidence.
AttributionRule`: scorer, when the question is read with the sentence, the copied-words rule, the threshold):
  right        correct answers with an attributed chunk that contains a gold answer (the issue's target: >= 95%)
  false support  sentences of correct answers checked against ANOTHER question's chunks (which cannot support
               them) that are still called supported: lower is better
and for the evidence, the share of questions whose top sentence contains a gold answer, per scorer.

    scripts/run-bench.sh attribution bench/results/answers.json [--mode rerank]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rag.answers.evidence import AttributionRule, attribute, evidence_units
from rag.evaluation.answer_eval import contains_answer
from rag.results import Source
from rag.retrieval.embeddings import BiEncoderPairScorer, load_bi_encoder
from rag.retrieval.rerank import load_cross_encoder
from rag.settings import Settings


def sources_of(record: dict) -> list[Source]:
    return [Source(chunk_id=str(s["number"]), file=s["location"], page=None, start_index=0, text=s["text"],
                   bi_rank=s["number"], bi_score=0.0, number=s["number"]) for s in record["sources"] if s["number"]]


def measure(records: list[dict], scorer, rule: AttributionRule) -> tuple[float, float]:
    right, false = [], []
    for i, r in enumerate(records):
        sources = sources_of(r)
        holds = {s.number for s in sources if contains_answer(s.text, r["gold"])}
        found = {n for s in attribute(r["question"], r["answer"], sources, scorer, rule) for n in s.attributed}
        right.append(bool(found & holds))
        other = records[(i + len(records) // 2) % len(records)]  # a different question's chunks
        if other["question"] != r["question"]:
            mismatched = attribute(r["question"], r["answer"], sources_of(other), scorer, rule)
            false += [s.supported for s in mismatched]
    return statistics.fmean(right), statistics.fmean(false) if false else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--mode", default="rerank")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    result = next(r for r in report["results"] if r["mode"] == args.mode)
    records = result["per_question"]["answerable"]
    settings = Settings()
    scorers = {"cross-encoder": load_cross_encoder(settings),
               "bi-encoder": BiEncoderPairScorer(load_bi_encoder(settings))}
    correct = [r for r in records if r["contains_gold"]]
    print(f"{args.report.name} ({args.mode}): {len(records)} answerable, {len(correct)} answered correctly")
    print("\n| scorer | question read | copied words | threshold | right | false support |\n|---|---|---|---|---|---|")
    for name, scorer in scorers.items():
        thresholds = (0.3, 0.5, 0.7) if name == "cross-encoder" else (0.4, 0.5, 0.6)
        for question in ("never", "short", "always"):
            for copied in (False, True):
                for threshold in thresholds:
                    rule = AttributionRule(question=question, copied=copied, threshold=threshold)
                    right, false = measure(correct, scorer, rule)
                    print(f"| {name} | {question} | {copied} | {threshold} | {right:.3f} | {false:.3f} |")

    print("\nevidence: the top sentence of the sent chunks contains a gold answer (where a sent chunk does)")
    holding = [r for r in records if r["gold_sent"]]
    for name, scorer in scorers.items():
        hits = []
        for r in holding:
            items = [c["text"][a:b] for c in r["sources"] if c["number"]
                     for a, b in evidence_units(c["text"])]
            scores = scorer.score([(r["question"], " ".join(t.split())) for t in items])
            hits.append(contains_answer(items[max(range(len(items)), key=lambda j: scores[j])], r["gold"]))
        print(f"  {name}: {statistics.fmean(hits):.3f} of {len(holding)}")


if __name__ == "__main__":
    main()
