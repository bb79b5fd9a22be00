"""The sidebar: per-session choices (model, candidates, chunks kept, hybrid search, not-covered threshold) and a
health line."""

from __future__ import annotations

import streamlit as st

from rag.answers.declines import rerank_gate
from rag.answers.llm import OllamaStatus, model_is_listed
from rag.errors import RagError
from rag.retrieval.store import Store
from rag.settings import Settings

from . import resources
from .notices import with_fix
from .text import escape, model_label, plural


OK = ":green[:material/check_circle:]"
WARN = ":orange[:material/warning:]"
THRESHOLD = "threshold"


def use_threshold(value: float) -> None:
    """Make `value` this session's not-covered threshold. Call it from a widget's callback: callbacks run before the
    sidebar is drawn, and a widget's state cannot change once it is drawn in a run."""
    st.session_state[THRESHOLD] = round(min(max(float(value), 0.0), 1.0), 2)


def model_options(configured: str, status: OllamaStatus) -> list[str]:
    """The server's pulled models; the configured one first, even when it is not pulled (its error then shows)."""
    pulled = sorted(status.models)
    listed = next((m for m in pulled if model_is_listed(configured, [m])), None)
    if listed is None:
        return [configured, *pulled]
    return [listed, *(m for m in pulled if m != listed)]


def session_settings(base: Settings) -> tuple[Settings, OllamaStatus]:
    """Draw the choices (model, candidates, chunks kept, hybrid search, not-covered threshold); return the session's
    settings and the status of the chosen model."""
    status = resources.ollama_status(base)
    options = model_options(base.ollama_model, status)
    st.subheader("Settings")
    model = st.selectbox(
        "Ollama model", options, key="model",
        format_func=lambda m: m if model_is_listed(m, status.models) else f"{m} (not pulled)",
        help="Models pulled on the Ollama server. The default comes from RAG_OLLAMA_MODEL.",
    )
    candidates = st.slider("Candidates fetched", 1, max(100, base.candidates), base.candidates, key="candidates",
                           help="Chunks the bi-encoder fetches for the cross-encoder to rescore (RAG_CANDIDATES).")
    keep = st.slider("Chunks kept", 1, 20, base.keep, key="keep",
                     help="Best chunks sent to the LLM, numbered [1]..[k] (RAG_KEEP).")
    hybrid = st.toggle("Hybrid search", value=base.hybrid, key="hybrid",
                       help="Fetch candidates by the bi-encoder and BM25 keywords together, fused by reciprocal rank "
                       "(RAG_HYBRID).")
    # The threshold starts from the gate in force (RAG_MIN_RERANK_SCORE, or the value calibrated for the
    # cross-encoder) and lives in the session's state, where `use_threshold` (the
    # Evaluate page's suggestion) can set it too; so the slider takes no value of its own.
    gate = rerank_gate(base)
    st.session_state.setdefault(THRESHOLD, float(gate.threshold))
    threshold = st.slider(
        "Not-covered threshold", 0.0, 1.0, step=0.01, key=THRESHOLD,
        help=f"If the best cross-encoder score is below this, the LLM is not asked (0 = off). Default: "
             f"{gate.threshold:g}, {gate.source}.",
    )
    settings = base.model_copy(update={"ollama_model": model, "candidates": candidates, "hybrid": hybrid,
                                       "keep": min(keep, candidates), "min_rerank_score": threshold})
    if model != base.ollama_model:
        status = resources.ollama_status(settings)
    return settings, status


def health(settings: Settings, status: OllamaStatus, store: Store | None) -> None:
    """One line per part: a green tick when it works, an orange warning with the fix when it does not."""
    lines: list[str] = []
    problem = status.problem()
    if not status.reachable:
        lines.append(f"{WARN} {with_fix(problem.message, problem.fix)}")
    else:
        lines.append(f"{OK} Ollama {escape(status.version or '')} at {escape(settings.ollama_url)}")
        if problem is None:
            lines.append(f"{OK} Model {escape(settings.ollama_model)}")
        else:
            lines.append(f"{WARN} Model {escape(settings.ollama_model)} is not pulled: run "
                         f"`ollama pull {settings.ollama_model.replace('`', '')}`")
    if store is not None:
        try:
            lines.append(f"{OK} Store: {escape(settings.store_location)}, "
                         f"{plural(store.count_documents(), 'document')}, {plural(store.count_chunks(), 'chunk')}")
        except RagError as exc:
            lines.append(f"{WARN} {with_fix(exc.message, exc.fix)}")
        lines.append(f"{OK} Embedder {escape(model_label(settings.embedding_model))} "
                     f"({store.embedder.dimension} dimensions)")
    lines.append(f"Reranker {escape(model_label(settings.reranker_model))}")
    st.caption("  \n".join(lines), help=f"Reranker: {escape(settings.reranker_model)}")
