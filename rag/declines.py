"""When the documents are silent: the not-covered gate before the LLM, and the LLM's own decline after it.

The gate compares the best score of the candidate pool with a threshold: the cross-encoder's best score when the
question was reranked, the bi-encoder's best cosine when it was not. A setting overrides the threshold; otherwise
it comes from the table below, calibrated per model with `python -m rag eval --answers` on squad2-dev (off-corpus
questions against answerable ones). A model the table does not know gets the fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

from .settings import Settings


@dataclass(frozen=True)
class Gate:
    threshold: float
    source: str


# Keyed by the model's name (a hub id's last part, or a local folder's name). Each value says where it comes from.
RERANK_GATES: dict[str, Gate] = {
    "reranker-minilm-l6-sci": Gate(0.02, "calibrated on squad2-dev (README, 'Answers')"),
    "ms-marco-MiniLM-L6-v2": Gate(0.01, "not calibrated here (no model hub on the development machines); "
                                        "the earlier default, to be replaced by a squad2-dev calibration"),
}
DENSE_GATES: dict[str, Gate] = {
    "all-MiniLM-L6-v2": Gate(0.30, "calibrated on squad2-dev (README, 'Answers')"),
}
FALLBACK = Gate(0.0, "no calibration for this model: the gate is off; calibrate with `python -m rag eval --answers`")


def model_key(name: str | None) -> str:
    return PurePath(str(name or "")).name


def gate_for(settings: Settings, reranked: bool) -> Gate:
    """The threshold in force for a ranking, and where it comes from."""
    if reranked:
        if settings.min_rerank_score is not None:
            return Gate(settings.min_rerank_score, "RAG_MIN_RERANK_SCORE")
        return RERANK_GATES.get(model_key(settings.reranker_model), FALLBACK)
    if settings.min_dense_score is not None:
        return Gate(settings.min_dense_score, "RAG_MIN_DENSE_SCORE")
    return DENSE_GATES.get(model_key(settings.embedding_model), FALLBACK)


def not_covered_message(best: float, gate: Gate, reranked: bool) -> str:
    scorer = "cross-encoder" if reranked else "bi-encoder"
    return (f"Your documents do not seem to cover this question: the best passage scored {best:.3f} with the "
            f"{scorer}, below the threshold of {gate.threshold:g}. Rephrase it, add documents that cover it, "
            "or lower the threshold.")


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
