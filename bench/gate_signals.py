"""Could a signal beside the pool's best cross-encoder score tell off-corpus questions better? Measured.

Retrieves every question of the squad2-dev files (rerank mode, no LLM) into a scratch store, scores the evidence
sentences of the kept chunks, and compares not-covered rules by the share of each file they stop:
  calibration  questions 41 on (qa 41-300, off-corpus 41-150, unanswerable 41-150): where thresholds are chosen
  evaluation   questions 1-40, as the README's `eval --answers --limit 40` run
Rules (each threshold chosen on the calibration questions only, to let >= 90% of answerable questions through,
or at the balanced point):
  best cross-encoder score (the app's gate); best evidence sentence's score; the share of the question's words
  (weighted by rarity in the library) found in the kept chunks; a rare question word missing from the kept chunks
  when the best score is also below a second threshold; a logistic regression over all of these.
And the app's gate held out over every question, two-fold (the app's own calibration on the odd-numbered questions
chooses the threshold for the even-numbered ones and the other way round).

    scripts/run-bench.sh gate_signals [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rag.answers.evidence import best_evidence, find_evidence
from rag.evaluation.answer_eval import calibrate_gate, load_answer_set
from rag.pipeline import build_pipeline
from rag.retrieval.keyword_index import tokenize
from rag.settings import Settings

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "eval" / "squad2-dev"
KINDS = ("answerable", "off-corpus", "unanswerable")  # calibrate_gate balances against the first other file
STOP = set("the a an of in on at to for by with from and or is are was were be been what which who whom whose when "
           "where why how did does do that this these those as it its not than into about after before during has "
           "have had can could would will many much most more some any other one two new also his her their there "
           "they he she".split())
Rule = Callable[[dict], bool]


def signals(squad: Path, settings: Settings) -> list[dict]:
    test = load_answer_set(squad / "qa.jsonl", squad / "docs", [squad / "off-corpus.jsonl",
                                                                 squad / "unanswerable.jsonl"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="gate-signals-") as scratch:
        pipeline = build_pipeline(settings.model_copy(update={"chroma_path": Path(scratch) / "chroma",
                                                              "chroma_host": None, "collection": "gate-signals"}))
        pipeline.library.ingest_many(test.documents)
        items = [("answerable", q) for q, _ in test.answerable]
        items += [(kind, q) for kind, questions in test.unanswerable.items() for q in questions]
        counts: dict[str, int] = {}
        for kind, question in items:
            ranking = pipeline.retrieve(question, rerank=True)
            best = best_evidence(find_evidence(question, ranking.kept, pipeline.cross_encoder()))
            counts[kind] = counts.get(kind, 0) + 1
            rows.append({"kind": kind, "n": counts[kind], "question": question, "ce": ranking.best_rerank_score,
                         "bi": ranking.best_bi_score, "evidence": best.score if best else 0.0,
                         "kept": [s.text for s in ranking.kept]})
        pipeline.store.close()
    library = [p for _, data in test.documents for p in data.decode("utf-8").split("\n\n") if p.strip()]
    add_word_signals(rows, library)
    return rows


def add_word_signals(rows: list[dict], library: list[str]) -> None:
    df: dict[str, int] = {}
    for paragraph in library:
        for word in set(tokenize(paragraph)):
            df[word] = df.get(word, 0) + 1

    def idf(word: str) -> float:
        return math.log((len(library) + 1) / (df.get(word, 0) + 0.5))

    def stem(word: str) -> str:
        return word[:6]

    for row in rows:
        words = [w for w in dict.fromkeys(tokenize(row["question"])) if w not in STOP]
        kept = {stem(w) for w in tokenize(" ".join(row["kept"]))}
        weight = {w: idf(w) for w in words}
        row["covered"] = sum(v for w, v in weight.items() if stem(w) in kept) / (sum(weight.values()) or 1)
        row["rarest_missing"] = max([v for w, v in weight.items() if stem(w) not in kept and not w.isdigit()] or [0])
        del row["kept"]


def split(rows: list[dict]) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
    calibration, evaluation = {}, {}
    for row in rows:
        (evaluation if row["n"] <= 40 else calibration).setdefault(row["kind"], []).append(row)
    return calibration, evaluation


def share(rows: list[dict], rule: Rule) -> float:
    return sum(map(rule, rows)) / len(rows)


def for_target(calibration: dict[str, list[dict]], rules: dict[float, Rule]) -> float:
    """The rule's parameter that stops the most off-corpus questions while letting >= 90% answerable through."""
    ok = [t for t, rule in rules.items() if share(calibration["answerable"], rule) <= 0.10]
    return max(ok, key=lambda t: (share(calibration["off-corpus"], rules[t]), -share(calibration["answerable"],
                                                                                       rules[t])))


def logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def regression_rules(calibration: dict[str, list[dict]]) -> dict[float, Rule]:
    from sklearn.linear_model import LogisticRegression

    def x(r: dict) -> list[float]:
        return [logit(r["ce"]), logit(r["evidence"]), r["covered"], r["rarest_missing"], r["bi"]]

    train = calibration["answerable"] + calibration["off-corpus"]
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(
        np.array([x(r) for r in train]), [0] * len(calibration["answerable"]) + [1] * len(calibration["off-corpus"]))
    return {t: (lambda r, t=t: model.predict_proba(np.array([x(r)]))[0, 1] >= t) for t in np.linspace(0.05, 0.95, 91)}


def compare(rows: list[dict]) -> list[dict]:
    calibration, evaluation = split(rows)
    grid = [round(t, 2) for t in np.arange(0.30, 1.0, 0.01)]
    families: dict[str, dict[float, Rule]] = {
        "best cross-encoder score < t": {t: (lambda r, t=t: r["ce"] < t) for t in grid},
        "best evidence sentence < t": {t: (lambda r, t=t: r["evidence"] < t) for t in grid},
        "question words covered < t": {t: (lambda r, t=t: r["covered"] < t) for t in grid},
        "score < 0.80, or a rare word missing and score < t": {
            t: (lambda r, t=t: r["ce"] < 0.80 or (r["rarest_missing"] >= 6.0 and r["ce"] < t)) for t in grid},
        "logistic regression of all five >= t": regression_rules(calibration),
    }
    out = []
    for name, rules in families.items():
        t = for_target(calibration, rules)
        out.append({"rule": name, "t": round(float(t), 2),
                    "calibration": {k: round(share(v, rules[t]), 3) for k, v in calibration.items()},
                    "evaluation": {k: round(share(v, rules[t]), 3) for k, v in evaluation.items()}})
    return out


def two_fold(rows: list[dict]) -> dict:
    """The app's gate (best cross-encoder score < t) held out over every question: t chosen by the app's own
    calibration (`rag.evaluation.answer_eval.calibrate_gate`) on the odd-numbered questions of each file is applied to
    the even-numbered ones and the other way round, so that each question is judged by a threshold chosen without it.
    Both of its thresholds: the balanced one, and the one letting >= 90% through."""
    out = {}
    for how in ("balanced", "for_target"):
        stopped: dict[str, int] = {}
        totals: dict[str, int] = {}
        chosen = []
        for parity in (0, 1):
            fit: dict[str, list[dict]] = {kind: [] for kind in KINDS}
            held: dict[str, list[dict]] = {kind: [] for kind in KINDS}
            for row in rows:
                (fit if row["n"] % 2 == parity else held)[row["kind"]].append(row)
            scores = {kind: [{"best_rerank_score": r["ce"]} for r in group] for kind, group in fit.items()}
            gate = calibrate_gate(scores["answerable"], {k: scores[k] for k in KINDS[1:]}, "best_rerank_score")
            t = gate["threshold"] if how == "balanced" else gate["for_target"]["threshold"]
            chosen.append(t)
            for kind, group in held.items():
                stopped[kind] = stopped.get(kind, 0) + sum(r["ce"] < t for r in group)
                totals[kind] = totals.get(kind, 0) + len(group)
        out[how] = {"thresholds": chosen, "stopped": {k: round(stopped[k] / totals[k], 3) for k in totals},
                    "questions": totals}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=SQUAD)
    parser.add_argument("--reranker", default=str(SQUAD.parents[1] / "models" / "reranker-minilm-l6-sci"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings(reranker_model=args.reranker)
    rows = signals(args.squad, settings)
    results = compare(rows)
    print("| rule (stops when) | t | calibration: answerable / off-corpus / unanswerable stopped | "
          "evaluation (1-40): answerable / off-corpus / unanswerable stopped |")
    print("|---|---|---|---|")
    for r in results:
        c, e = r["calibration"], r["evaluation"]
        print(f"| {r['rule']} | {r['t']:g} | {c['answerable']:.3f} / {c['off-corpus']:.3f} / {c['unanswerable']:.3f} "
              f"| {e['answerable']:.3f} / {e['off-corpus']:.3f} / {e['unanswerable']:.3f} |")
    folds = two_fold(rows)
    for how, f in folds.items():
        st = f["stopped"]
        print(f"two-fold, every question held out, gate chosen {how} (t = {f['thresholds'][0]:g} / "
              f"{f['thresholds'][1]:g}): stopped answerable {st['answerable']:.3f}, off-corpus {st['off-corpus']:.3f}, "
              f"unanswerable {st['unanswerable']:.3f} ({f['questions']['answerable']}, {f['questions']['off-corpus']}, "
              f"{f['questions']['unanswerable']} questions)")
    if args.json:
        args.json.write_text(json.dumps({"reranker": args.reranker, "results": results, "two_fold": folds}, indent=1))


if __name__ == "__main__":
    main()
