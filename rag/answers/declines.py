"""When the documents are silent: the not-covered gate before the LLM, the LLM's own decline after it, and an
answer none of whose sentences the sent chunks support.

The gate looks at the best score of the candidate pool: the cross-encoder's when the question was reranked, else
the bi-encoder's best cosine (not with hybrid search, whose first score is a fused rank). The documents are taken
not to cover the question when it is below the threshold. A setting overrides each threshold; otherwise it comes
from the tables below, calibrated per model on squad2-dev (answerable questions against off-corpus ones, on
questions the README's evaluation does not use). A model the tables do not know gets no gate of that kind.

Why not both scores at once: on squad2-dev a bi-encoder gate added to the cross-encoder's stopped a few more
off-corpus questions, but on the sample documents it stopped a glossary question the cross-encoder scored 0.97
(short entries have low cosines). The bi-encoder's gate is therefore set below its squad2-dev calibration (0.43):
at 0.30 it stops only what is far off.

Why the unsupported answer: a gate on scores cannot stop an off-corpus question whose pool happens to score high
(on squad2-dev, four of 40 held-out off-corpus questions scored 0.93-0.98 with the test cross-encoder), and small
models answer those anyway, from an unrelated passage or from memory. Their answers are then not supported by
any sent chunk, which the attribution after the answer measures (`evidence.attribute`); on the same run every
off-corpus answer that passed the gate had no supported sentence, and the only answerable ones without one were
wrong. Such an answer keeps its text but is shown as not coming from the documents.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from ..results import AnswerSentence, Ranking
from ..settings import Settings


DECLINED = "The model says your documents do not answer this."
UNSUPPORTED_ANSWER = ("Your documents do not support this answer: no sentence of it is backed by the passages "
                      "it was given, so it does not come from them.")

# What the chunks shown under an answer are, by the answer's outcome (Chat, Compare, the export and the CLI).
SOURCES_HEADINGS = {"not_covered": "Closest passages (not sent to the LLM)", "declined": "Sources (sent to the LLM)",
                    "unsupported": "Sources (sent to the LLM; none supports the answer)"}


def sources_heading(outcome: str | None) -> str:
    return SOURCES_HEADINGS.get(outcome or "", "Sources")


@dataclass(frozen=True)
class Gate:
    threshold: float
    source: str


_CALIBRATED = "calibrated on squad2-dev questions 41 on, `eval --answers --gate-only` (README, 'Answers')"
# Keyed by the model's name (a hub id's last part, or a local folder's name). Each value says where it comes from.
RERANK_GATES: dict[str, Gate] = {
    "reranker-minilm-l6-sci": Gate(0.80, _CALIBRATED),
    "ms-marco-MiniLM-L6-v2": Gate(0.01, "not calibrated (no model hub on the development machines): the earlier "
                                        "default; calibrate with `python -m rag eval --answers`"),
}
DENSE_GATES: dict[str, Gate] = {
    "all-MiniLM-L6-v2": Gate(0.30, "set below its squad2-dev calibration of 0.43 (`eval --answers --gate-only`), "
                                   "which stopped short glossary entries the cross-encoder scored 0.97"),
}
NO_GATE = Gate(0.0, "no calibration for this model: calibrate with `python -m rag eval --answers`")
NO_DENSE_GATE = Gate(-1.0, NO_GATE.source)


def model_key(name: str | None) -> str:
    return PurePath(str(name or "")).name


def rerank_gate(settings: Settings) -> Gate:
    """The threshold on the best cross-encoder score, and where it comes from."""
    if settings.min_rerank_score is not None:
        return Gate(settings.min_rerank_score, "RAG_MIN_RERANK_SCORE")
    return RERANK_GATES.get(model_key(settings.reranker_model), NO_GATE)


def dense_gate(settings: Settings) -> Gate:
    """The threshold on the best bi-encoder cosine, and where it comes from."""
    if settings.min_dense_score is not None:
        return Gate(settings.min_dense_score, "RAG_MIN_DENSE_SCORE")
    return DENSE_GATES.get(model_key(settings.embedding_model), NO_DENSE_GATE)


def not_covered(ranking: Ranking, settings: Settings) -> str | None:
    """The message to show instead of an answer when the pool scores below a gate; None when it passes."""
    if not ranking.kept:
        return None
    if ranking.reranked:
        scorer, best, gate = "cross-encoder", ranking.best_rerank_score, rerank_gate(settings)
        variable = "RAG_MIN_RERANK_SCORE"
    else:
        scorer, best, gate, variable = "bi-encoder", ranking.best_bi_score, dense_gate(settings), "RAG_MIN_DENSE_SCORE"
    if best is not None and best < gate.threshold:
        return (f"Your documents do not seem to cover this question: the best passage scored {best:.3f} with the "
                f"{scorer}, below the threshold of {gate.threshold:g} ({gate.source}). Rephrase it, add documents "
                f"that cover it, or lower the threshold ({variable}).")
    return None


# What models say when the passages do not answer: our prompt's sentence, and the common paraphrases.
_DECLINE = re.compile(
    r"(do(?:es)?\s*n[o']t|did\s*n[o']t|cannot|can't|could\s*n[o']t|unable to|no)\s+"
    r"(?:\w+\s+){0,4}?(contain|say|mention|provide|answer|include|give|specify|state|information|find|know|"
    r"determine|have)"
    r"|\bnot\s+(?:\w+\s+){0,3}?(mentioned|stated|specified|provided|given|found|covered)\b"
    r"|\bI\s+don't\s+know\b|\bno\s+(?:relevant\s+)?information\b|\bnot\s+enough\s+information\b",
    re.IGNORECASE,
)


def is_decline(text: str) -> bool:
    """Whether an answer says that the passages do not answer the question (rather than answering it).

    Only the start of the answer counts: a model that answers and then adds that something else is not
    mentioned has answered.
    """
    head = " ".join(text.split())[:160]
    return bool(_DECLINE.search(head))


def is_unsupported(sentences: Sequence[AnswerSentence]) -> bool:
    """Whether an attributed answer has sentences and not one of them is supported by a sent chunk."""
    return bool(sentences) and not any(s.supported for s in sentences)
