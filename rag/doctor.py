"""Health checks shared by `python -m rag doctor` and the app: each part ok, or the problem and its fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import RagError
from .settings import Settings


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        head = f"{'ok' if self.ok else 'problem':<8} {self.part}: {self.detail}"
        return head if self.ok or not self.fix else f"{head} -> fix: {self.fix}"


def _attempt(part: str, action: Callable[[], str]) -> Check:
    try:
        return Check(part, True, action())
    except RagError as exc:
        return Check(part, False, exc.message, exc.fix)
    except Exception as exc:  # doctor reports, it never crashes
        return Check(part, False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _notice(model) -> str:
    """Why an encoder runs in another number format than asked (int8 missing or refused), if it does."""
    return f"; note: {model.notice}" if getattr(model, "notice", None) else ""


RERANKER_FALLBACK = "until then, questions are answered in the bi-encoder's order, each with a notice"


def run_checks(settings: Settings, only: str | None = None) -> list[Check]:
    """Each part's check, in order; `only="reranker"` checks the cross-encoder alone (run-app.sh does at start)."""
    from .retrieval.embeddings import load_bi_encoder
    from .answers.llm import check_ollama
    from .retrieval.rerank import load_cross_encoder
    from .retrieval.store import Store

    checks: list[Check] = []
    loaded: dict = {}

    def embedder() -> str:
        loaded["embedder"] = model = load_bi_encoder(settings)
        return f"{settings.embedding_model} loads ({model.dimension} dimensions, {model.format}){_notice(model)}"

    def store() -> str:
        if "embedder" not in loaded:
            raise RagError("not checked: the embedder did not load")
        opened = Store(settings, loaded["embedder"])
        try:
            docs, chunks = len(opened.list_records()), opened.count_chunks()
        finally:
            opened.close()
        return (f"{settings.store_location}, collection '{settings.collection}' opens with a matching embedder; "
                f"{docs} documents, {chunks} chunks")

    def reranker() -> str:
        model = load_cross_encoder(settings)
        return f"{settings.reranker_model} loads ({model.format}){_notice(model)}"

    if only == "reranker":
        return [_reranker_check(_attempt("reranker", reranker))]
    checks.append(_attempt("embedder", embedder))
    checks.append(_attempt("store", store))
    checks.append(_reranker_check(_attempt("reranker", reranker)))
    status = check_ollama(settings)
    problem = status.problem()
    if not status.reachable:
        checks.append(Check("ollama", False, f"not reachable at {settings.ollama_url} ({status.error})",
                            problem.fix if problem else None))
    else:
        checks.append(Check("ollama", True, f"reachable at {settings.ollama_url} (version {status.version})"))
        checks.append(Check("model", problem is None,
                            f"'{settings.ollama_model}' is pulled" if problem is None else problem.message,
                            None if problem is None else problem.fix))
    return checks


def _reranker_check(check: Check) -> Check:
    """A cross-encoder that cannot load does not stop the app (it answers without reranking): say so."""
    if check.ok:
        return check
    return Check(check.part, False, f"{check.detail}; {RERANKER_FALLBACK}", check.fix)


def run_doctor(settings: Settings, say: Callable[[str], None], only: str | None = None) -> int:
    checks = run_checks(settings, only)
    for check in checks:
        say(check.line())
    return 0 if all(c.ok for c in checks) else 1
