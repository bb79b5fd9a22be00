"""The cross-encoder adapter and the LangChain document compressor that reranks with it.

LangChain's own `CrossEncoderReranker` drops the scores; this compressor keeps, on each document's metadata,
the bi-encoder rank and score it arrived with and the cross-encoder score and rank it leaves with.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from langchain_core.callbacks import Callbacks
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict

from ..encoders.batches import length_buckets, pad_batch
from ..encoders.copy_record import activate, activation_name, open_recorded, write_record
from ..encoders.models import describe_load_failure, quiet_model_loading, resolve_model, torch_dtype
from ..encoders.quantize import choose_format, format_name, load_int8, open_copy
from ..settings import Settings

# Metadata keys the retriever and the compressor write, read by the pipeline.
BI_RANK, BI_SCORE, CE_RANK, CE_SCORE = "bi_rank", "bi_score", "ce_rank", "ce_score"


class SentenceTransformerCrossEncoder(BaseCrossEncoder):
    """A sentence-transformers CrossEncoder; scores are sigmoid(logit), 0..1, higher is more relevant.

    `precision` is a number format (`rag.encoders.quantize.FORMATS`); int8 runs a statically quantized copy of the model
    (built once and cached, rag/encoders/quantize.py) and falls back to the torch formats, with `notice` saying why,
    when it cannot. Each pair is tokenized once; batches are formed by length so that padding wastes little. With
    `remember`, the last that many pairs scored are answered from memory (the app: Chat and Compare asking about the
    same pool compute it once); benchmarks leave it at 0 so that every score is computed. Where a copy is chosen and its
    record exists (rag/encoders/copy_record.py), the copy runs without loading sentence-transformers.
    """

    def __init__(self, name: str, device: str = "cpu", batch_size: int = 32, precision: str = "float32",
                 quantized_cache: Path | None = None, remember: int = 0) -> None:
        self.name = name
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._remember = remember
        self._scores: OrderedDict[tuple[str, str], float] = OrderedDict()
        try:
            choice = choose_format(precision, device, "cross-encoder")
            source = resolve_model(name)
        except Exception as exc:  # an unreachable hub, a missing folder
            raise describe_load_failure("cross-encoder", name, "RAG_RERANKER_MODEL", exc) from exc
        if not (choice.int8 and self._open_recorded(source, precision, quantized_cache)):
            self._load(source, choice, device, precision, quantized_cache)

    def _open_recorded(self, source: str, precision: str, cache: Path | None) -> bool:
        """Run the chosen copy from its record (rag/encoders/copy_record.py), without torch, where the record exists."""
        found = open_recorded("cross-encoder", self.name, source, precision, cache)
        if found is None:
            return False
        self._tokenizer, self._forward, self.format = found.tokenizer, found.forward, found.format
        self._model = self._torch_model = self.dtype = None
        self._max_tokens, self._activation = found.record.max_length, found.record.activation
        self.notice = found.copies.notice
        return True

    def _load(self, source: str, choice, device: str, precision: str, cache: Path | None) -> None:
        from sentence_transformers import CrossEncoder

        quiet_model_loading()
        try:
            self.dtype = torch_dtype(choice.torch_precision, device)
            self._model = CrossEncoder(source, device=device, model_kwargs={"dtype": self.dtype})
        except Exception as exc:  # hub errors, missing files and bad configs all surface differently
            raise describe_load_failure("cross-encoder", self.name, "RAG_RERANKER_MODEL", exc) from exc
        self._tokenizer, self._max_tokens = self._model.tokenizer, int(self._model.max_seq_length)
        self._torch_model = self._model.transformers_model
        self._forward = self._torch_forward
        # Sigmoid and identity are computed alike whichever way the encoder loads; another function by torch.
        self._activation = activation_name(self._model.activation_fn)
        self.format, self.notice = format_name(self.dtype), choice.notice
        if choice.int8:  # a copy (int8, or OpenVINO float32) where asked for or fastest; else torch
            loaded = load_int8("cross-encoder", self.name, source, cache, self._tokenizer, self._max_tokens)
            opened = open_copy(precision, loaded)
            if opened is not None:
                self._forward, self.format = opened
                # The copy computes every score: torch's weights would only hold memory (about 90 MB).
                self._torch_model.to("meta")
                if self._activation is not None:
                    write_record(loaded.files, self._tokenizer, self._max_tokens, activation=self._activation)
            self.notice = loaded.notice

    def _torch_forward(self, features: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v).to(self._torch_model.device) for k, v in features.items()}
            return self._torch_model(**tensors).logits.float().cpu().numpy()

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        if not text_pairs:
            return []
        pairs = [(str(q), str(p)) for q, p in text_pairs]
        with self._lock:
            new = [p for p in dict.fromkeys(pairs) if p not in self._scores]
            if new:
                self._scores.update(zip(new, self._score_new(new)))
            for p in pairs:
                self._scores.move_to_end(p)
            found = [self._scores[p] for p in pairs]
            while len(self._scores) > self._remember:
                self._scores.popitem(last=False)
        return found

    def _score_new(self, pairs: list[tuple[str, str]]) -> list[float]:
        encoded = self._tokenizer([q for q, _ in pairs], [p for _, p in pairs], truncation=True,
                                  max_length=self._max_tokens)
        logits = self.logits(encoded)
        if self._activation is not None:
            return activate(logits, self._activation)
        import torch

        return self._model.activation_fn(torch.from_numpy(logits)).tolist()

    def logits(self, encoded) -> np.ndarray:
        """The model's first logit for each tokenized pair of `encoded`, in its order (float32, no activation)."""
        out = np.zeros(len(encoded["input_ids"]), dtype=np.float32)
        for batch in length_buckets([len(ids) for ids in encoded["input_ids"]], self.batch_size):
            logits = self._forward(pad_batch(encoded, batch, self._tokenizer.pad_token_id or 0))
            out[batch] = np.asarray(logits, dtype=np.float32).reshape(len(batch), -1)[:, 0]
        return out


class RememberingCrossEncoder(BaseCrossEncoder):
    """Scores each (question, passage) pair once, until `forget()`: an evaluation reranks overlapping pools.

    `load` returns the real cross-encoder; it is called on the first score, so that nothing loads before it is used.
    """

    def __init__(self, load: Callable[[], BaseCrossEncoder]) -> None:
        self._load, self._model = load, None
        self._scores: dict[tuple[str, str], float] = {}

    @property
    def name(self) -> str | None:
        return getattr(self._model, "name", None)

    @property
    def dtype(self):
        return getattr(self._model, "dtype", None)

    @property
    def format(self) -> str | None:
        return getattr(self._model, "format", None)

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        pairs = [tuple(p) for p in text_pairs]
        new = [p for p in dict.fromkeys(pairs) if p not in self._scores]
        if new:
            self._model = self._model or self._load()
            self._scores.update(zip(new, self._model.score(new)))
        return [self._scores[p] for p in pairs]

    def forget(self) -> None:
        self._scores.clear()


class ScoreKeepingReranker(BaseDocumentCompressor):
    """Rescore documents with a cross-encoder; return them best first, scores and both ranks in metadata.

    `top_n=None` returns every document (the Compare view needs the whole pool); otherwise the best `top_n`.
    Documents are expected to carry `bi_rank`/`bi_score` from retrieval; missing ones are taken from input order.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: BaseCrossEncoder
    top_n: int | None = 3

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        scores = self.model.score([(query, d.page_content) for d in documents])
        if len(scores) != len(documents):
            raise ValueError(f"cross-encoder returned {len(scores)} scores for {len(documents)} documents")
        # Ties keep the bi-encoder order (sorted is stable over the input order).
        order = sorted(range(len(documents)), key=lambda i: -scores[i])
        reranked = []
        for new_rank, i in enumerate(order, start=1):
            doc = documents[i]
            metadata = {**doc.metadata, CE_SCORE: float(scores[i]), CE_RANK: new_rank}
            metadata.setdefault(BI_RANK, i + 1)
            reranked.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
        return reranked if self.top_n is None else reranked[: self.top_n]


def load_cross_encoder(settings: Settings, remember: int = 0) -> SentenceTransformerCrossEncoder:
    return SentenceTransformerCrossEncoder(settings.reranker_model, device=settings.device,
                                           precision=settings.reranker_precision,
                                           quantized_cache=settings.quantized_cache, remember=remember)
