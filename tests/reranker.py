"""Which cross-encoder the tests load, so that they run from any clone. In this order:

1. `RAG_TEST_RERANKER`, when set (a model folder or a hub id);
2. the project's test model, `../shared/models/reranker-minilm-l6-sci`, where it exists (the development machines:
   they have no model hub);
3. the app's default cross-encoder (`RAG_RERANKER_MODEL`'s default) from the local Hugging Face cache
   (`HF_HUB_CACHE`, else `~/.cache/huggingface/hub`).

Nothing here or in the tests reaches the hub (conftest.py switches it off): without any of the three, the tests
that need a cross-encoder fail with `missing_message()`, which gives the one command that puts the default in the
cache.
Tests that rely on the test model's particular rankings carry the `needs_test_reranker` mark and are skipped with
any other model; tests that need a score threshold take it from the scores of the model that is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = "reranker-minilm-l6-sci"
SHARED = REPO.parent / "shared" / "models" / TEST_MODEL
DEFAULT = Settings.model_fields["reranker_model"].default  # what a user of the app gets


@dataclass(frozen=True)
class RerankerChoice:
    name: str  # what RAG_RERANKER_MODEL is set to: a folder or a hub id
    found: str  # where, in words (the test report's header, the error when there is none)
    available: bool = True

    @property
    def is_test_model(self) -> bool:
        return Path(self.name).name == TEST_MODEL


def find_test_reranker(environ: Mapping[str, str] = os.environ, shared: Path = SHARED) -> RerankerChoice:
    """The cross-encoder for the tests, looked up in the order of this module's docstring."""
    if environ.get("RAG_TEST_RERANKER"):
        return RerankerChoice(environ["RAG_TEST_RERANKER"], "RAG_TEST_RERANKER")
    if shared.is_dir():
        return RerankerChoice(str(shared), f"the project's test model in {shared.parent}")
    if in_hf_cache(DEFAULT, environ):
        return RerankerChoice(DEFAULT, "the local Hugging Face cache")
    return RerankerChoice(DEFAULT, "nowhere", available=False)


def in_hf_cache(repo_id: str, environ: Mapping[str, str]) -> bool:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True, cache_dir=environ.get("HF_HUB_CACHE"))
    except Exception:  # not cached (the exception type varies across huggingface_hub versions)
        return False
    return True


def missing_message() -> str:
    return (f"no cross-encoder for the tests: {SHARED} does not exist and {DEFAULT} is not in the local Hugging "
            "Face cache. With internet, put it there once (the tests never download): python -c \"from "
            f"huggingface_hub import snapshot_download; snapshot_download('{DEFAULT}')\"; or set "
            "RAG_TEST_RERANKER to a cross-encoder folder")
