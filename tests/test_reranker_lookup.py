"""The tests' cross-encoder is looked up in a fixed order (tests/reranker.py), so that a clone without
../shared runs them with the default cross-encoder from the Hugging Face cache. This machine cannot reach the hub,
so the cache is a folder laid out as the hub lays it out, holding the test model's files under the default's name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.encoders.models import resolve_model
from tests.conftest import REPO, RERANKER
from tests.reranker import DEFAULT, find_test_reranker, missing_message

REVISION = "0123456789abcdef0123456789abcdef01234567"
PAIRS = [("How long does a refund take?", "Refunds are processed within 14 days."),
         ("How long does a refund take?", "The moon is made of rock and dust.")]


def fake_hub_cache(root: Path) -> Path:
    """`root` as a hub cache holding DEFAULT: models--org--name/{refs/main, snapshots/<revision>/<files>}, the files
    linked to those of the model the tests loaded."""
    repo = root / ("models--" + DEFAULT.replace("/", "--"))
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for file in Path(resolve_model(RERANKER)).iterdir():
        (snapshot / file.name).symlink_to(file.resolve())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    return root


@pytest.fixture
def places(tmp_path):
    """A shared model folder and a hub cache that both exist, and an empty cache."""
    shared = tmp_path / "shared" / "reranker-minilm-l6-sci"
    shared.mkdir(parents=True)
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    return shared, fake_hub_cache(tmp_path / "hub"), empty


def test_the_variable_comes_first_then_the_shared_model_then_the_cache(places, tmp_path):
    shared, cache, _ = places
    env = {"HF_HUB_CACHE": str(cache), "RAG_TEST_RERANKER": "/models/mine"}
    assert find_test_reranker(env, shared).name == "/models/mine"
    del env["RAG_TEST_RERANKER"]
    chosen = find_test_reranker(env, shared)
    assert chosen.name == str(shared) and chosen.is_test_model
    chosen = find_test_reranker(env, tmp_path / "no-shared")
    assert (chosen.name, chosen.found, chosen.available) == (DEFAULT, "the local Hugging Face cache", True)
    assert not chosen.is_test_model


def test_without_a_cached_copy_the_default_is_reported_missing_with_the_command_that_caches_it(places, tmp_path,
                                                                                                  monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the lookup tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    _, _, empty = places
    chosen = find_test_reranker({"HF_HUB_CACHE": str(empty)}, tmp_path / "no-shared")
    assert (chosen.name, chosen.available) == (DEFAULT, False)
    assert f"snapshot_download('{DEFAULT}')" in missing_message() and "RAG_TEST_RERANKER" in missing_message()


def test_the_default_found_in_the_cache_is_what_the_pipeline_loads(tmp_path, cross_encoder):
    """In a fresh process pointed at the cache (HF_HUB_CACHE, hub off): the lookup settles on the default's hub id,
    and the pipeline's cross-encoder loads it from there: the same files, so the same scores as the model loaded
    here."""
    cache = fake_hub_cache(tmp_path / "hub")
    code = ("import json, sys; from pathlib import Path; from tests.reranker import find_test_reranker; "
            "from rag.retrieval.rerank import SentenceTransformerCrossEncoder; "
            "chosen = find_test_reranker(shared=Path(sys.argv[1])); "
            "model = SentenceTransformerCrossEncoder(chosen.name, precision='auto', "
            "quantized_cache=Path(sys.argv[3])); "
            "print(json.dumps([chosen.name, chosen.found, model.score(json.loads(sys.argv[2]))]))")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    # The copies the session's encoders use (same files, same digest): a fresh HOME would build them again, a minute.
    copies = Path.home() / ".cache" / "rag" / "quantized"
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "no-shared"), json.dumps(PAIRS), str(copies)],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    name, found, scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert (name, found) == (DEFAULT, "the local Hugging Face cache")
    assert scores == pytest.approx(cross_encoder.score(PAIRS), abs=1e-4)

