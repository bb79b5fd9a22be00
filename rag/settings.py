"""The one typed settings object. Every knob of the pipeline lives here; read from `RAG_*` variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


Precision = Literal["auto", "float32", "bfloat16", "int8"]


class Settings(BaseSettings):
    """Settings of the retrieve -> rerank -> answer pipeline. Each field is also the environment variable `RAG_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    # -- the store
    chroma_path: Path = Field(
        Path("store/chroma"),
        description="Folder of the embedded Chroma store (used when no Chroma server is set).",
    )
    chroma_host: str | None = Field(
        None, description="Host of a Chroma server (`chroma run`); when set, the embedded folder is not used."
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server.")
    hnsw_ef_search: int = Field(
        500,
        ge=10,
        description=(
            "How many neighbours Chroma's HNSW index examines per search; higher is closer to exact search. On SciFact "
            "(10,959 chunks, 100 candidates) Chroma's default of 100 lost 0.009 nDCG@10 against exact search and 500 "
            "lost none, at under 5 ms per query either way. It is fixed when a collection is created; `python -m rag rebuild` applies "
            "a new value to an existing one."
        ),
    )
    collection: str = Field(
        "documents",
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,60}[a-zA-Z0-9]$",
        description="Name of the Chroma collection that holds the chunks.",
    )
    keyword_index_dir: Path = Field(
        Path("store/keywords"),
        description=(
            "Folder of this app's local BM25 keyword index when the store is a Chroma server (with an embedded store the "
            "index is a file in RAG_CHROMA_PATH). It follows other apps' writes to the server by itself."
        ),
    )
    judgements_path: Path = Field(
        Path("store/judgements.json"),
        description="File of the Evaluate page's relevance judgements (questions and the chunks that answer them).",
    )
    conversations_path: Path | None = Field(
        None,
        description=(
            "SQLite file of the saved chat conversations (questions, answers and the sources sent). Unset: "
            "`conversations.sqlite3` beside the Chroma folder, on this machine even with a Chroma server."
        ),
    )

    # -- the models
    embedding_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Bi-encoder (sentence-transformers): a model hub id or a local folder.",
    )
    reranker_model: str = Field(
        "cross-encoder/ms-marco-MiniLM-L6-v2",
        description="Cross-encoder (sentence-transformers) that rescores the candidates: a model hub id or a local folder.",
    )
    device: str = Field("cpu", description="Torch device for both encoders, e.g. `cpu` or `cuda`.")
    embedding_precision: Precision = Field(
        "auto",
        description=(
            "Number format of the bi-encoder: `float32`; `bfloat16`, half the cost of each multiplication on CPUs "
            "with native bf16 (AVX512-BF16 or AMX) and emulated, slower, elsewhere; `int8`, the faster of two "
            "int8 copies built once into `quantized_cache`, each used only if it keeps 29 of 30 top-3 chunks of "
            "float32's (else torch with a notice): one quantized statically on real (question, chunk) pairs with "
            "OpenVINO (openvino, nncf), one dynamically with ONNX Runtime (onnxruntime, onnx); `auto`, the fastest "
            "of these that kept the rankings on this CPU (timed when the copies are built), counting float32 "
            "computed by OpenVINO or by ONNX Runtime (copies built beside them) and only copies that beat every "
            "torch format. "
            "README: 'Number formats'."
        ),
    )
    reranker_precision: Precision = Field(
        "auto", description="Number format of the cross-encoder, as for `embedding_precision`."
    )
    quantized_cache: Path = Field(
        Path("~/.cache/rag/quantized"),
        description=(
            "Folder of the int8 and float32 copies of the encoders (OpenVINO, ONNX Runtime), one per model and "
            "source hash, each with its provenance "
            "(source model and hash, format, calibration set, check, timings); rebuilt when the source changes."
        ),
    )
    embedding_batch_size: int = Field(32, ge=1, description="Chunks per forward pass of the bi-encoder.")
    ingest_batch_chunks: int = Field(
        512, ge=1, description="Chunks embedded and written together when adding many files; each file still commits alone."
    )

    # -- the LLM
    ollama_url: str = Field("http://127.0.0.1:11434", description="Base URL of the Ollama server.")
    ollama_model: str = Field("llama3.2", description="Ollama model that writes the answers (must be pulled).")
    num_ctx: int = Field(4096, ge=512, description="Context window, in tokens, asked of Ollama.")
    num_predict: int = Field(512, ge=1, description="Most tokens an answer may have.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature of the LLM.")
    llm_timeout: float = Field(120.0, gt=0, description="Seconds to wait for Ollama before giving up on a request.")
    rewrite_followups: bool = Field(
        True, description="Rewrite a follow-up question into a standalone one (with the LLM) before retrieval."
    )

    # -- ingest
    chunk_size: int = Field(1000, ge=100, description="Characters per chunk (recursive splitter).")
    chunk_overlap: int = Field(150, ge=0, description="Characters shared by neighbouring chunks.")
    max_file_mb: float = Field(50.0, gt=0, description="Largest file accepted for ingest, in megabytes.")
    max_pages: int = Field(5000, ge=1, description="Most pages a PDF may have.")
    pdf_timeout: float = Field(
        120.0, gt=0, description="Seconds a PDF may take to read (it is parsed in a separate process) before it is refused."
    )

    # -- retrieval and reranking
    candidates: int = Field(20, ge=1, le=500, description="Candidates fetched by the bi-encoder for reranking.")
    keep: int = Field(3, ge=1, le=20, description="Chunks kept after reranking and sent to the LLM.")
    hybrid: bool = Field(
        False, description="Fetch candidates by the bi-encoder and BM25 keyword search together (reciprocal-rank fusion)."
    )
    rerank: bool = Field(True, description="Rescore the candidates with the cross-encoder (can be switched off per question).")
    min_rerank_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=(
            "If the best cross-encoder score (0..1, sigmoid) is below this, the documents are taken not to cover "
            "the question and the LLM is not called. Unset: the value calibrated for the configured cross-encoder "
            "(README, 'Answers'); 0 turns the check off."
        ),
    )
    min_dense_score: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description=(
            "The same check for questions asked without reranking, on the best bi-encoder cosine. Unset: the value "
            "calibrated for the configured embedder; -1 turns the check off."
        ),
    )

    # -- what the LLM reads
    context: Literal["chunks", "windows", "evidence"] = Field(
        "evidence",
        description=(
            "What the LLM reads of the kept chunks (they stay the same chunks, numbered alike): `chunks`, each whole; "
            "`windows`, each cut to the sentences around its best one (at most `evidence_chars`); `evidence`, only "
            "the `evidence_sentences` best sentences over all of them (the highlighted evidence). README, 'Answers': "
            "correctness and first token of each with the stand-in model."
        ),
    )
    evidence_sentences: int = Field(
        1, ge=1, le=20, description="Sentences sent when `context` is `evidence`: the best-scoring ones."
    )
    prompt_layout: Literal["plain", "sandwich", "example"] = Field(
        "plain",
        description=(
            "How the answer request is laid out: `plain` (passages, then the question), `sandwich` (the question "
            "before and after the passages), `example` (a worked example of a cited answer and of a decline, then "
            "as `sandwich`). README, 'Answers': what each gives."
        ),
    )
    evidence_chars: int = Field(
        400, ge=100, description="Most characters sent of each chunk when `context` is `windows`."
    )

    @model_validator(mode="after")
    def _check_overlap(self) -> "Settings":
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @property
    def uses_chroma_server(self) -> bool:
        return bool(self.chroma_host)

    @property
    def conversations_file(self) -> Path:
        """Where conversations are saved: `conversations_path`, or beside the embedded store's folder."""
        return self.conversations_path or self.chroma_path.parent / "conversations.sqlite3"

    @property
    def store_location(self) -> str:
        """Where the chunks live, for messages."""
        if self.uses_chroma_server:
            return f"chroma server {self.chroma_host}:{self.chroma_port}"
        return f"chroma folder {self.chroma_path}"
