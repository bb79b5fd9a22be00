"""Running an encoder's copy without torch: what it needs from sentence-transformers, recorded beside the copies.

A process that loads an encoder in one of its copies (rag/encoders/quantize.py) does so through sentence-transformers,
and then records in the copies' folder what running the copy takes from that library: the tokenizer (`tokenizer.json`,
the Rust tokenizer the library itself calls), the input limit, the input names and padding id, and by kind the
embedding size or the function of the logit. A later process that finds the copies built for the same model, and
this record written with the same library versions, runs the copy from the record: it never imports torch,
transformers or sentence-transformers, which is about ten of the twelve seconds a `python -m rag retrieve` took to
start. Anything missing or different sends the encoder the library's way, which writes the record again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .quantize import EncoderCopies, Forward, Kind

RECORD, TOKENIZER = "run-record.json", "tokenizer.json"
LIBRARIES = ("sentence-transformers", "transformers", "tokenizers")
ACTIVATIONS = ("sigmoid", "identity")
# The Hugging Face tokenizer's output names, and where a Rust tokenizer's encoding keeps each.
ENCODING_FIELDS = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}


@dataclass(frozen=True)
class RunRecord:
    max_length: int
    input_names: list[str]
    pad_token_id: int
    dimension: int | None = None  # a bi-encoder's embedding size
    activation: str | None = None  # a cross-encoder's function of its logit: one of ACTIVATIONS
    libraries: dict[str, str] = field(default_factory=dict)  # the versions that computed the fields above


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def activation_name(function) -> str | None:
    """"sigmoid" or "identity" for the activation module a sentence-transformers CrossEncoder applies; else None."""
    name = type(function).__name__.lower()
    return name if name in ACTIVATIONS else None


def activate(logits: np.ndarray, activation: str) -> list[float]:
    """A cross-encoder's scores from its logits, the same whichever way the encoder was loaded."""
    x = np.asarray(logits, dtype=np.float64)
    if activation == "identity":
        return x.tolist()
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for very negative logits: the score is then 0
        return (1.0 / (1.0 + np.exp(-x))).tolist()


@dataclass
class RecordedCopy:
    """An encoder's chosen copy, opened, with its record and tokenizer."""

    record: RunRecord
    tokenizer: CopyTokenizer
    copies: EncoderCopies
    forward: Forward
    format: str


def open_recorded(kind: Kind, name: str, source: str, precision: str, cache: Path | None) -> RecordedCopy | None:
    """The copy that `precision` chooses among those built for `source`, opened from its record; None where there
    are no copies, no complete record, or torch is the choice."""
    from .quantize import built_copies, open_copy

    loaded = built_copies(kind, name, source, cache)
    recorded = read_record(loaded.files) if loaded else None
    if recorded is None:
        return None
    record, tokenizer = recorded
    complete = bool(record.dimension) if kind == "bi-encoder" else record.activation in ACTIVATIONS
    opened = open_copy(precision, loaded) if complete else None
    return None if opened is None else RecordedCopy(record, tokenizer, loaded, *opened)


def write_record(files: dict[str, Path], tokenizer, max_length: int, dimension: int | None = None,
                 activation: str | None = None) -> None:
    """Record `tokenizer` (the library's) beside the copies in `files`, with the input limit, and a bi-encoder's
    `dimension` or a cross-encoder's `activation`; the input names, padding id and library versions are read here.
    Nothing is written where it is there already. Never raises: the record only saves time. A tokenizer without a
    Rust one behind it is not recorded."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not files or backend is None:
        return
    folder = _folder(files)
    record = RunRecord(max_length, list(tokenizer.model_input_names), tokenizer.pad_token_id or 0,
                       dimension=dimension, activation=activation, libraries=library_versions())
    text = json.dumps(asdict(record), indent=1)
    try:
        if (folder / RECORD).is_file() and (folder / RECORD).read_text() == text and (folder / TOKENIZER).is_file():
            return
        _replace(folder / TOKENIZER, backend.to_str())
        _replace(folder / RECORD, text)  # last: a record always has its tokenizer beside it
    except OSError:
        pass


def read_record(files: dict[str, Path]) -> tuple[RunRecord, CopyTokenizer] | None:
    """The record beside the copies in `files` and its tokenizer; None if there is none, or it was written with
    other library versions, or it cannot be read."""
    if not files:
        return None
    folder = _folder(files)
    try:
        record = RunRecord(**json.loads((folder / RECORD).read_text()))
        if record.libraries != library_versions():
            return None
        return record, CopyTokenizer(folder / TOKENIZER, record)
    except Exception:  # missing, unreadable, or from another version of this module: the library's way instead
        return None


class CopyTokenizer:
    """A recorded Rust tokenizer, called as the copies call the Hugging Face one (`rag.encoders.quantize.Encoder`, the
    cross-encoder): texts, or questions and passages as pairs, truncated longest-first to the recorded input limit,
    unpadded, as lists per input name."""

    def __init__(self, path: Path, record: RunRecord) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(record.max_length, strategy="longest_first")
        self.max_length, self.pad_token_id = record.max_length, record.pad_token_id
        self.model_input_names = list(record.input_names)

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None, truncation: bool = True,
                 max_length: int | None = None) -> dict[str, list[list[int]]]:
        if not truncation or (max_length or self.max_length) != self.max_length:
            raise ValueError(f"this tokenizer truncates to {self.max_length} tokens only")
        inputs = list(zip(texts, pairs)) if pairs is not None else list(texts)
        encodings = self._tokenizer.encode_batch(inputs)
        return {name: [getattr(e, ENCODING_FIELDS[name]) for e in encodings] for name in self.model_input_names}


def _folder(files: dict[str, Path]) -> Path:
    """The copies' folder, where the record lives beside them."""
    return next(iter(files.values())).parent


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # after a failed write; after the rename there is nothing left to remove
