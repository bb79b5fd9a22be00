"""What the benchmarks share: the data they read, the LLM they talk to, and how they summarise timings."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rag.evaluation.metrics import percentile
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "eval" / "scifact"
# Trained for this project with ms-marco-MiniLM-L6-v2's architecture (so its cost per pair); its scores are its own.
DEFAULT_RERANKER = REPO.parent / "shared" / "models" / "reranker-minilm-l6-sci"


def split_as_the_app_does(documents: list[tuple[str, bytes]], settings: Settings) -> list:
    """The chunks (LangChain documents) the app's ingest makes of these (name, bytes) files."""
    import hashlib

    from rag.documents.library import split_document
    from rag.documents.loaders import load_document

    return [chunk for name, data in documents
            for chunk in split_document(load_document(data, name, max_pages=settings.max_pages), name,
                                        hashlib.sha256(data).hexdigest(), settings)]


def cpu_description() -> str:
    """The CPU's model name, core count and what matters for the number formats (rag.encoders.quantize.cpu_kind)."""
    import os

    from rag.encoders.quantize import cpu_kind

    name = "unknown CPU"
    with contextlib.suppress(OSError):
        name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), name)
    return f"{name}, {os.cpu_count()} cores, {cpu_kind()}"


def p50_p95(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1), "n": len(values)}


def _answers(url: str, model: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/api/tags", timeout=3) as reply:
            return any(m.get("name", "").split(":")[0] == model.split(":")[0] for m in json.load(reply)["models"])
    except OSError:
        return False


@contextlib.contextmanager
def llm_settings(settings: Settings) -> Iterator[dict]:
    """Settings overrides for a real LLM: RAG_OLLAMA_URL if it serves the model, else the stand-in server."""
    if _answers(settings.ollama_url, settings.ollama_model):
        yield {"ollama_url": settings.ollama_url, "ollama_model": settings.ollama_model}
        return
    from ollama_standin.testing import start_standin, stop_standin

    url, process = start_standin(stderr=subprocess.DEVNULL)
    try:
        yield {"ollama_url": url, "ollama_model": "smollm2:135m"}
    finally:
        stop_standin(process)
