"""How to attribute an answer's sentences to the chunks sent, and how to pick the evidence sentence: measured.

Reads the JSON that `python -m rag eval --answers ... --json FILE` wrote (each answer with its question, gold
answers and the chunks sent) and scores, with the configured encoders:
  attribution  for each correct answer, whether its best-supported chunk (per method) contains a gold answer;
               and for each sentence, the best score (to set the "unsupported" threshold)
  evidence     for each question whose sent chunks hold a gold answer, whether the top sentence does (per scorer)

    scripts/run-bench.sh attribution FILE.json [--mode rerank]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from rag.answer_eval import contains_answer
from rag.embeddings import BiEncoderPairScorer, load_bi_encoder
from rag.evidence import _CITATION, _merge_short, answer_sentences, split_sentences
from rag.prompt import content_words
from rag.rerank import load_cross_encoder
from rag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--mode", default="rerank")
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    result = next(r for r in report["results"] if r["mode"] == args.mode)
    records = result["per_question"]["answerable"]
    settings = Settings()
    scorers = {"cross-encoder": load_cross_encoder(settings), "bi-encoder": BiEncoderPairScorer(load_bi_encoder(settings))}

    correct = [r for r in records if r["contains_gold"]]
    print(f"{args.report.name} ({args.mode}): {len(records)} answerable, {len(correct)} answered correctly")
    print("\nattribution: correct answers whose best-supported chunk contains a gold answer")
    for scorer_name, scorer in scorers.items():
        for with_question in (False, True):
            for lexical in (False, True):
                hits, best_scores = [], []
                for r in correct:
                    chunks = [s for s in r["sources"] if s["number"]]
                    found = set()
                    for a, b, _ in answer_sentences(r["answer"]):
                        plain = _CITATION.sub("", r["answer"][a:b]).strip()
                        query = f"{r['question']} {plain}" if with_question else plain
                        scores = scorer.score([(query, c["text"]) for c in chunks])
                        best = max(range(len(chunks)), key=lambda j: scores[j])
                        best_scores.append(scores[best])
                        words = content_words(plain)
                        copied = [c for c in chunks if words and words <= content_words(c["text"])]
                        pick = chunks[best]
                        if lexical and copied and pick not in copied:
                            pick = copied[0]
                        found.add(pick["number"])
                    holds = {c["number"] for c in chunks if contains_answer(c["text"], r["gold"])}
                    hits.append(bool(found & holds))
                label = f"{scorer_name}{' + question' if with_question else ''}{' + copied words' if lexical else ''}"
                print(f"  {label:<45} {statistics.fmean(hits):.3f}  (sentence best score p10 "
                      f"{sorted(best_scores)[len(best_scores) // 10]:.3f})")

    print("\nevidence: the top sentence of the sent chunks contains a gold answer (where a sent chunk does)")
    holding = [r for r in records if r["gold_sent"]]
    for scorer_name, scorer in scorers.items():
        hits = []
        for r in holding:
            items = [(c["text"][a:b]) for c in r["sources"] if c["number"]
                     for a, b in _merge_short(c["text"], split_sentences(c["text"]))]
            scores = scorer.score([(r["question"], " ".join(t.split())) for t in items])
            top = items[max(range(len(items)), key=lambda j: scores[j])]
            hits.append(contains_answer(top, r["gold"]))
        print(f"  {scorer_name:<45} {statistics.fmean(hits):.3f} of {len(holding)}")


if __name__ == "__main__":
    main()
