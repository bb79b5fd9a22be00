"""Which cross-encoder the tests load, so that they run from any clone. In this order:

1. `RAG_TEST_RERANKER`, when set (a model folder or a hub id);
2. the project's test model, `../shared/models/reranker-minilm-l6-sci`, where it exists (the development machines:
   they have no model hub);
3. the app's default cross-encoder (`RAG_RERANKER_MODEL`'s default) from the local Hugging Face cache
   (`HF_HUB_CACHE`, else `~/.cache/huggingface/hub`);
4. the same default, downloaded once into that cache, when the hub answers.

The tests themselves run with the hub switched off (conftest.py); only step 4 reaches it, in a child process.
Tests that rely on the test model's particular rankings carry the `needs_test_reranker` mark and are skipped with
any other model; tests that need a score threshold take it from the scores of the model that is loaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
TEST_MODEL = "reranker-minilm-l6-sci"
SHARED = REPO.parent / "shared" / "models" / TEST_MODEL
DEFAULT = Settings.model_fields["reranker_model"].default  # what a user of the app gets
_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class RerankerChoice:
    name: str  # what RAG_RERANKER_MODEL is set to: a folder or a hub id
    found: str  # where, in words (the test report's header, the error when there is none)
    available: bool = True

    @property
    def is_test_model(self) -> bool:
        return Path(self.name).name == TEST_MODEL


def find_test_reranker(environ: Mapping[str, str] = os.environ, shared: Path = SHARED,
                       fetch: Callable[[str, Mapping[str, str]], bool] | None = None) -> RerankerChoice:
    """The cross-encoder for the tests, looked up in the order of this module's docstring."""
    if environ.get("RAG_TEST_RERANKER"):
        return RerankerChoice(environ["RAG_TEST_RERANKER"], "RAG_TEST_RERANKER")
    if shared.is_dir():
        return RerankerChoice(str(shared), f"the project's test model in {shared.parent}")
    if in_hf_cache(DEFAULT, environ):
        return RerankerChoice(DEFAULT, "the local Hugging Face cache")
    if (fetch or fetch_from_hub)(DEFAULT, environ):
        return RerankerChoice(DEFAULT, "downloaded from the Hugging Face hub into the local cache")
    return RerankerChoice(DEFAULT, "nowhere", available=False)


def in_hf_cache(repo_id: str, environ: Mapping[str, str]) -> bool:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True, cache_dir=environ.get("HF_HUB_CACHE"))
    except Exception:  # not cached (the exception type varies across huggingface_hub versions)
        return False
    return True


def fetch_from_hub(repo_id: str, environ: Mapping[str, str]) -> bool:
    """Download `repo_id` into the cache in a child process (this one has the hub switched off); False when the
    hub does not answer within seconds (its client would otherwise retry for about a minute)."""
    endpoint = environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        socket.create_connection((host, int(port or 443)), timeout=3).close()
    except OSError:
        return False
    env = {k: v for k, v in environ.items() if k not in _OFFLINE}
    code = "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1])"
    try:
        return subprocess.run([sys.executable, "-c", code, repo_id], env=env, capture_output=True,
                              timeout=600).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def missing_message() -> str:
    return (f"no cross-encoder for the tests: {SHARED} does not exist, {DEFAULT} is not in the local Hugging Face "
            "cache and the hub did not answer. Run the tests once with internet (they download it), or set "
            "RAG_TEST_RERANKER to a cross-encoder folder")
