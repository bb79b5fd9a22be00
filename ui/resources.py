"""What loads once per process and is shared by every session: the encoders, the store, the LLM clients.

`st.cache_resource` is process-global, so each cached function is keyed by the settings values that make its
object what it is (two stores in one process, as in tests, do not collide), and each object is thread-safe:
the encoders lock around their models, Chroma's client and the HTTP clients are safe across threads.
A `Pipeline` itself is cheap and is built per session and run from these parts (`pipeline_for`).
"""

from __future__ import annotations

import sys

import streamlit as st
from langchain_core.language_models import BaseChatModel

from rag.answers.llm import OllamaStatus, check_ollama, make_chat_model
from rag.documents.library import Library
from rag.errors import RagError
from rag.pipeline import Pipeline
from rag.results import Ranking
from rag.retrieval.embeddings import BiEncoder, load_bi_encoder
from rag.retrieval.hybrid import KeywordIndex
from rag.retrieval.rerank import SentenceTransformerCrossEncoder, load_cross_encoder
from rag.retrieval.store import Store
from rag.settings import Settings

StoreKey = tuple[str, str | None, int, str, str, str, int]
REMEMBERED_PAIRS = 4096  # about 200 questions of 20 candidates; a few MB of text


@st.cache_resource(show_spinner="Loading the embedding model…", max_entries=4)
def _bi_encoder(name: str, device: str, batch_size: int, precision: str, _settings: Settings) -> BiEncoder:
    _note(f"loading the bi-encoder {name}")
    model = load_bi_encoder(_settings)
    if model.notice:
        _note(model.notice)
    return model


@st.cache_resource(show_spinner="Loading the cross-encoder…", max_entries=4)
def _cross_encoder(name: str, device: str, precision: str,
                   _settings: Settings) -> SentenceTransformerCrossEncoder | RagError:
    _note(f"loading the cross-encoder {name}")
    try:  # shared by every session: Chat and Compare asking about the same pool score each pair once
        model = load_cross_encoder(_settings, remember=REMEMBERED_PAIRS)
    except RagError as exc:  # kept, so that questions do not each try again (a restart does)
        _note(f"the cross-encoder {name} cannot load: {exc}")
        return exc
    if model.notice:
        _note(model.notice)
    return model


@st.cache_resource(show_spinner="Opening the document store…", max_entries=8)
def _store(key: StoreKey, _settings: Settings) -> Store:
    opened = Store(_settings, bi_encoder(_settings))
    Library(opened, _settings).repair()  # chunks an interrupted ingest left behind
    return opened


@st.cache_resource(show_spinner=False, max_entries=8)
def _keyword_index(key: StoreKey) -> KeywordIndex:
    return KeywordIndex()  # searches the store's own BM25 index (store.keywords), reconciling it when the store changed


@st.cache_resource(show_spinner=False, max_entries=16)
def _chat_model(url: str, model: str, temperature: float, num_ctx: int, num_predict: int, timeout: float,
                _settings: Settings) -> BaseChatModel:
    return make_chat_model(_settings, model=model, num_predict=num_predict)


@st.cache_data(ttl=10, show_spinner=False, max_entries=16)
def _ollama_status(url: str, model: str, _settings: Settings) -> OllamaStatus:
    return check_ollama(_settings, timeout=3.0)


def _note(what: str) -> None:
    # One line in the server's log per model load: how often models load is part of what the load test checks.
    print(f"app: {what}", file=sys.stderr, flush=True)


def bi_encoder(settings: Settings) -> BiEncoder:
    return _bi_encoder(settings.embedding_model, settings.device, settings.embedding_batch_size,
                       settings.embedding_precision, settings)


def cross_encoder(settings: Settings) -> SentenceTransformerCrossEncoder:
    """The process's cross-encoder for these settings; raises the RagError of a load that failed."""
    loaded = _cross_encoder(settings.reranker_model, settings.device, settings.reranker_precision, settings)
    if isinstance(loaded, RagError):
        raise loaded
    return loaded


def reranker_problem(settings: Settings) -> RagError | None:
    """None when the cross-encoder is loaded (this loads it), else why it cannot load."""
    loaded = _cross_encoder(settings.reranker_model, settings.device, settings.reranker_precision, settings)
    return loaded if isinstance(loaded, RagError) else None


def store_key(settings: Settings) -> StoreKey:
    """Everything that decides which store, and which embedder writes it."""
    folder = "" if settings.uses_chroma_server else str(settings.chroma_path.resolve())
    return (folder, settings.chroma_host, settings.chroma_port, settings.collection, settings.embedding_model,
            settings.device, settings.embedding_batch_size)


def store(settings: Settings) -> Store:
    """The process's store for these settings (opened once; raises RagError if it cannot be opened)."""
    return _store(store_key(settings), settings)


def chat_model(settings: Settings, model: str | None = None, num_predict: int | None = None) -> BaseChatModel:
    """The Pipeline's chat-model factory, backed by one cached ChatOllama per distinct configuration."""
    return _chat_model(settings.ollama_url, model or settings.ollama_model, settings.temperature, settings.num_ctx,
                       num_predict or settings.num_predict, settings.llm_timeout, settings)


def ollama_status(settings: Settings) -> OllamaStatus:
    """Ollama's version and pulled models, checked at most every 10 seconds per URL and model."""
    return _ollama_status(settings.ollama_url, settings.ollama_model, settings)


def pipeline_for(settings: Settings) -> Pipeline:
    """A pipeline for one session's settings over the shared store (which holds the BM25 index) and the process's
    cross-encoder (loaded when a page first needs it)."""
    return Pipeline(settings, store(settings), lambda: cross_encoder(settings), chat_model=chat_model,
                    keyword_index=_keyword_index(store_key(settings)))


def ranking_key(pipeline: Pipeline) -> tuple:
    """What decides a question's ranking besides the question: the store, the models, the sidebar's choices, the
    documents (names and hashes). A cached ranking is reused only while this key is unchanged."""
    s = pipeline.settings
    return (*store_key(s), s.reranker_model, s.candidates, s.keep, s.hybrid,
            tuple((r.name, r.sha256) for r in pipeline.library.documents()))


@st.cache_data(show_spinner=False, max_entries=1000)
def _reranked(question: str, key: tuple, fallback: bool, _pipeline: Pipeline) -> Ranking:
    return _pipeline.retrieve(question, rerank=True, fallback=fallback)


def reranked(pipeline: Pipeline, question: str, key: tuple | None = None, fallback: bool = False) -> Ranking:
    """The question's candidate pool in both orders (Compare and Evaluate). Ranked again only when `ranking_key`
    changes, whichever page or session asks; pass the key when ranking many questions against one state.
    `fallback`: see `Pipeline`; Compare shows what it can, Evaluate must not score a ranking as reranked."""
    return _reranked(question, key or ranking_key(pipeline), fallback, pipeline)
