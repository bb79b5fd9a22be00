"""The bi-encoder adapter: a sentence-transformers model behind LangChain's `Embeddings` interface."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.embeddings import Embeddings

from ..encoders.copy_record import open_recorded, write_record
from ..encoders.models import declared_dimension, describe_load_failure, quiet_model_loading, resolve_model, torch_dtype
from ..encoders.quantize import Encoder, choose_format, float32_copy, format_name, load_int8, open_copy
from ..errors import ModelLoadError
from ..settings import Settings


class BiEncoder(Embeddings):
    """Normalised sentence-transformers embeddings, so that cosine similarity is a dot product.

    `name` is the model setting as given (recorded in the collection); `dimension` its output size. Where a copy
    is chosen and its record exists (rag/encoders/copy_record.py), the copy runs without loading sentence-transformers.
    """

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32, precision: str = "float32",
                 quantized_cache: Path | None = None) -> None:
        self.name = name
        self.batch_size = batch_size
        # torch modules are not documented as safe under concurrent forward passes from several threads.
        self._lock = threading.Lock()
        self._float32: Callable | None = None
        source = resolve_model(name)
        try:
            choice = choose_format(precision, device, "bi-encoder")
        except ValueError as exc:
            raise describe_load_failure("embedding model", name, "RAG_EMBEDDING_MODEL", exc) from exc
        if not (choice.int8 and self._open_recorded(source, precision, quantized_cache)):
            self._load(source, choice, device, precision, quantized_cache)

    def _open_recorded(self, source: str, precision: str, cache: Path | None) -> bool:
        """Run the chosen copy from its record (rag/encoders/copy_record.py), without torch, where the record exists."""
        found = open_recorded("bi-encoder", self.name, source, precision, cache)
        if found is None:
            return False
        self._copy, self.format = found.forward, found.format
        self._open_float32 = self._float32_opener(found.copies)
        self._encoder = Encoder("bi-encoder", found.tokenizer, found.record.max_length)
        self._model, self.dtype, self.notice = None, None, found.copies.notice
        self.dimension, self._max_tokens = found.record.dimension, found.record.max_length
        return True

    def _load(self, source: str, choice, device: str, precision: str, cache: Path | None) -> None:
        from sentence_transformers import SentenceTransformer

        quiet_model_loading()
        try:
            self.dtype = torch_dtype(choice.torch_precision, device)
            self._model = SentenceTransformer(source, device=device, model_kwargs={"dtype": self.dtype})
        except Exception as exc:  # hub errors, missing files and bad configs all surface differently
            raise describe_load_failure("embedding model", self.name, "RAG_EMBEDDING_MODEL", exc) from exc
        self.format, self.notice = format_name(self.dtype), choice.notice
        tokenizer, self._max_tokens = self._model.tokenizer, int(self._model.max_seq_length)
        self._encoder = Encoder("bi-encoder", tokenizer, self._max_tokens)  # for the copies
        self._copy: Callable | None = None
        self._open_float32: Callable[[], Callable] | None = None
        dimension = self._model.get_embedding_dimension()
        if not dimension:
            raise ModelLoadError(f"{self.name} is not a sentence-embedding model (no output dimension)")
        self.dimension: int = int(dimension)
        if choice.int8:  # a copy (int8, or OpenVINO float32) where asked for or fastest; else torch
            loaded = load_int8("bi-encoder", self.name, source, cache, tokenizer, self._max_tokens)
            opened = open_copy(precision, loaded)
            if opened is not None:
                self._copy, self.format = opened
                write_record(loaded.files, tokenizer, self._max_tokens, dimension=self.dimension)
            self._open_float32 = self._float32_opener(loaded)
            self.notice = loaded.notice
        if self._copy is not None:
            # The copy computes every vector: torch's weights would only hold memory (about 90 MB). The
            # modules stay (tokenizer, dimension, input limit); a torch forward pass would now fail, not run.
            self._model.to("meta")

    def _float32_opener(self, loaded) -> Callable[[], Callable] | None:
        """int8, or bfloat16 in torch (where `auto` found it fastest): pair scores still come from float32."""
        if not self.format.startswith("float32") and (copy := float32_copy(loaded)) is not None:
            return loaded.openers[copy]
        return None

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self._copy is not None:
            with self._lock:
                return self._encoder.embed(self._copy, list(texts), self.batch_size).tolist()
        with self._lock:
            vectors = self._model.encode(list(texts), batch_size=self.batch_size, convert_to_tensor=True,
                                         show_progress_bar=False)
        # Normalised in float32 whatever the model's precision, so that every vector has length 1.
        vectors = vectors.float()
        return (vectors / vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def embed_float32(self, texts: list[str]) -> list[list[float]]:
        """Vectors for cosines compared with a fixed threshold (`rag.answers.evidence.AttributionRule`, measured in
        float32), which int8's noise (about 0.03 in cosine) would move: where the encoder searches in int8 or bfloat16,
        a float32 copy computes them (opened on first use; one exists wherever `auto` or `int8` built the copies); in
        float32, the encoder itself. A bfloat16 asked for by name (no copies built) stays bfloat16."""
        if self._open_float32 is None or not texts:
            return self.embed_documents(texts)
        with self._lock:
            if self._float32 is None:
                self._float32 = self._open_float32()
            return self._encoder.embed(self._float32, list(texts), self.batch_size).tolist()


class BiEncoderPairScorer(BaseCrossEncoder):
    """The bi-encoder behind the cross-encoder's interface: a pair scores the cosine of its two embeddings.

    It scores the evidence sentences of a question answered without the cross-encoder, and attributes the
    answer's sentences to chunks whatever the ranking (rag/answers/evidence.py, `AttributionRule`). Its vectors are
    float32's (`BiEncoder.embed_float32`), the format that rule's threshold was measured in.
    """

    def __init__(self, embedder: Embeddings) -> None:
        self.embedder = embedder
        self.name = getattr(embedder, "name", None)

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        if not text_pairs:
            return []
        texts = list(dict.fromkeys(t for pair in text_pairs for t in pair))
        embed = getattr(self.embedder, "embed_float32", self.embedder.embed_documents)
        vectors = dict(zip(texts, embed(texts)))
        return [sum(x * y for x, y in zip(vectors[a], vectors[b])) for a, b in text_pairs]


def load_bi_encoder(settings: Settings) -> BiEncoder:
    return BiEncoder(settings.embedding_model, device=settings.device, batch_size=settings.embedding_batch_size,
                     precision=settings.embedding_precision, quantized_cache=settings.quantized_cache)


class DeferredBiEncoder(Embeddings):
    """The configured bi-encoder, loaded on its first use (thread-safe), else behaving as the `BiEncoder` it loads.

    Commands that only read or remove records (`docs`, `delete`, `repair`) open the store with it and never load the
    model, which otherwise costs them about ten seconds. The store's provenance check needs only the name and the
    dimension, which the model folder's configuration declares (`rag.encoders.models.declared_dimension`); where it does
    not, asking for the dimension loads the model.
    """

    def __init__(self, settings: Settings) -> None:
        self.name = settings.embedding_model
        self._settings = settings
        self._declared = declared_dimension(settings.embedding_model)
        self._loaded: BiEncoder | None = None
        self._guard = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def loaded(self) -> BiEncoder:
        with self._guard:
            if self._loaded is None:
                self._loaded = load_bi_encoder(self._settings)
            return self._loaded

    @property
    def dimension(self) -> int:
        return self._declared or self.loaded().dimension

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.loaded().embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.loaded().embed_query(text)

    def __getattr__(self, attr: str):  # only for what is not found above: the loaded encoder's
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(self.loaded(), attr)
