"""Documents in and out of the store: ingest (add, unchanged, replace), delete, list, repair.

Order of writes for one document, so that a crash at any point leaves it fully in or fully out:
  1. load, split and embed everything in memory (a bad file fails here, having written nothing);
  2. upsert the new chunks (tagged with the new document hash);
  3. write the document record (the commit point: from here on the new version is the document), then log the
     change and update the keyword index (`Store.committed`: its own transaction, only ever for committed versions);
  4. delete chunks of the same name with another hash (the replaced version).
Chunks whose (name, hash) has no record are leftovers of a write cut off between 2 and 3; `repair` removes them
and retrieval ignores them meanwhile (they never reach the keyword index).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from langchain_core.documents import Document
from langchain_text_splitters import RecursiveCharacterTextSplitter

from ..errors import RagError, RejectedDocument, UnknownDocument
from ..retrieval.store import DocumentRecord, Store
from ..settings import Settings
from .loaders import LoadedDocument, load_document

Status = Literal["added", "unchanged", "replaced", "rejected"]
MAX_NAME = 200

# (done, total) chunks embedded of the file, or of the batch of files, being written
ChunkProgress = Callable[[int, int], None]
# (index, name) of the next file to be read and split, before it is
FileStart = Callable[[int, str], None]


@dataclass(frozen=True)
class IngestOutcome:
    name: str
    status: Status
    chunks: int = 0
    reason: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def clean_name(raw: str) -> str:
    """A display name for a file: its last path part, printable characters only, at most 200 characters.

    The name is only ever a label in the store; it is never used as a path on disk.
    """
    base = re.split(r"[\\/]", raw)[-1]
    base = "".join(ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C")
    base = base.strip().strip(".") or "unnamed"
    if len(base) > MAX_NAME:
        stem, dot, suffix = base.rpartition(".")
        keep = suffix if dot and len(suffix) <= 10 else ""
        base = base[: MAX_NAME - len(keep) - 2] + "…" + ("." + keep if keep else "")
    return base


def duplicate_in_batch(seen: dict[str, str], name: str, data: bytes) -> IngestOutcome | None:
    """The outcome for a second file of one batch under an already used name, else None (and `name` is noted).

    Which of two different files should win is the user's call, not ours: the later one is refused.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    if name not in seen:
        seen[name] = sha256
        return None
    if seen[name] == sha256:
        return IngestOutcome(name, "unchanged")
    return IngestOutcome(name, "rejected", reason="another file in this batch has the same name (rename one of them)")


def split_document(loaded: LoadedDocument, name: str, sha256: str, settings: Settings) -> list[Document]:
    """Chunks with content-hash ids, the page they come from and their start offset within it."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, add_start_index=True
    )
    chunks: list[Document] = []
    for page in loaded.pages:
        if not page.text.strip():
            continue
        for piece in splitter.create_documents([page.text]):
            start = int(piece.metadata["start_index"])
            metadata = {"source": name, "doc_sha": sha256, "kind": loaded.kind, "start_index": start,
                        "chunk_index": len(chunks)}
            if page.number is not None:
                metadata["page"] = page.number
            key = f"{name}\x00{sha256}\x00{page.number}\x00{start}\x00{piece.page_content}"
            chunk_id = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
            chunks.append(Document(page_content=piece.page_content, metadata=metadata, id=chunk_id))
    return chunks


@dataclass
class _Prepared:
    name: str
    record: DocumentRecord
    chunks: list[Document]
    replaces: bool


class Library:
    """The documents in one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ingest_bytes(self, name: str, data: bytes, on_chunks: ChunkProgress | None = None) -> IngestOutcome:
        """Add one file. Never raises for a bad file: a rejected file is an outcome, and nothing was written."""
        prepared = self._prepare(clean_name(name), data)
        if isinstance(prepared, IngestOutcome):
            return prepared
        return self._commit([prepared], on_chunks)[0]

    def ingest_many(self, files: Iterable[tuple[str, bytes]], on_file: Callable[[IngestOutcome], None] | None = None,
                    batch_chunks: int | None = None, on_start: FileStart | None = None,
                    on_chunks: ChunkProgress | None = None) -> list[IngestOutcome]:
        """Add many files, embedding their chunks together in batches (much faster for many small files).

        Each document is still committed by its own record, so an interruption leaves every one fully in or out.
        Progress: `on_start` before each file is read, `on_chunks` as a batch is embedded, `on_file` with each
        file's outcome once it is settled (a file waits for its batch to be written, so outcomes can come later
        than, and in another order from, the files). Returns the outcomes in the order of `files`.
        """
        batch_chunks = batch_chunks or self.settings.ingest_batch_chunks
        outcomes: dict[int, IngestOutcome] = {}
        pending: list[tuple[int, _Prepared]] = []

        def settle(index: int, outcome: IngestOutcome) -> None:
            outcomes[index] = outcome
            if on_file:
                on_file(outcome)

        def flush() -> None:
            for (index, _), outcome in zip(pending, self._commit([p for _, p in pending], on_chunks)):
                settle(index, outcome)
            pending.clear()

        seen: dict[str, str] = {}
        for index, (raw_name, data) in enumerate(files):
            name = clean_name(raw_name)
            if on_start:
                on_start(index, name)
            if duplicate := duplicate_in_batch(seen, name, data):
                settle(index, duplicate)
                continue
            prepared = self._prepare(name, data)
            if isinstance(prepared, IngestOutcome):
                settle(index, prepared)
                continue
            pending.append((index, prepared))
            if sum(len(p.chunks) for _, p in pending) >= batch_chunks:
                flush()
        flush()
        return [outcomes[i] for i in sorted(outcomes)]

    def _prepare(self, name: str, data: bytes) -> "_Prepared | IngestOutcome":
        """Load, split and check a file in memory; nothing is written here."""
        limit = int(self.settings.max_file_mb * 1024 * 1024)
        try:
            if len(data) > limit:
                raise RejectedDocument(
                    f"file too large: {len(data) / 1e6:.1f} MB, the limit is {self.settings.max_file_mb:g} MB",
                    fix="split it, or raise RAG_MAX_FILE_MB",
                )
            sha256 = hashlib.sha256(data).hexdigest()
            previous = self.store.get_record(name)
            if previous is not None and previous.sha256 == sha256:
                return IngestOutcome(name, "unchanged", chunks=previous.chunks)
            loaded = load_document(data, name, max_pages=self.settings.max_pages,
                                   pdf_timeout=self.settings.pdf_timeout)
            chunks = split_document(loaded, name, sha256, self.settings)
            if not chunks:
                raise RejectedDocument("no text in the file")
        except RejectedDocument as exc:
            return IngestOutcome(name, "rejected", reason=str(exc))
        record = DocumentRecord(
            name=name, sha256=sha256, kind=loaded.kind, pages=loaded.page_count, chunks=len(chunks),
            size_bytes=len(data), added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        return _Prepared(name, record, chunks, replaces=previous is not None)

    def _commit(self, prepared: list["_Prepared"], on_chunks: ChunkProgress | None = None) -> list[IngestOutcome]:
        """Embed, then write chunks, then the records (the commit point), then drop replaced versions."""
        if not prepared:
            return []
        chunks = [c for p in prepared for c in p.chunks]
        texts = [c.page_content for c in chunks]
        # Longest first over the whole batch: a forward pass pads its chunks to the longest of them, and the encoder
        # sorts only within one call. Embedding in file order, a few calls of 128, padded 14% of SciFact's tokens.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        step = self.settings.embedding_batch_size * 4  # progress a few times a second, not per forward pass
        for start in range(0, len(order), step):
            part = order[start : start + step]
            for i, vector in zip(part, self.store.embedder.embed_documents([texts[i] for i in part])):
                vectors[i] = vector
            if on_chunks:
                on_chunks(min(start + step, len(order)), len(order))
        self.store.add_chunks(chunks, vectors)
        self.store.put_records([p.record for p in prepared])
        self.store.committed(put=[(p.record, p.chunks) for p in prepared])
        outcomes = []
        for p in prepared:
            if p.replaces:
                self.store.delete_chunks({"$and": [{"source": p.name}, {"doc_sha": {"$ne": p.record.sha256}}]})
            outcomes.append(IngestOutcome(p.name, "replaced" if p.replaces else "added", chunks=len(p.chunks)))
        return outcomes

    def ingest_paths(
        self, paths: Iterable[Path], on_file: Callable[[IngestOutcome], None] | None = None
    ) -> list[IngestOutcome]:
        """Ingest files and folders (recursively, hidden files skipped); one outcome per file.

        Files are read one at a time as the batch goes, so a large folder is never held in memory at once.
        """
        def read(path: Path) -> bytes | None:
            try:
                return path.read_bytes()
            except OSError as exc:
                unreadable[path.name] = exc.strerror or str(exc)
                return None

        unreadable: dict[str, str] = {}
        files = ((p.name, data) for p in expand_paths(paths) if (data := read(p)) is not None)
        outcomes = self.ingest_many(files, on_file=on_file)
        for name, reason in unreadable.items():
            outcome = IngestOutcome(clean_name(name), "rejected", reason=f"cannot read it: {reason}")
            outcomes.append(outcome)
            if on_file:
                on_file(outcome)
        return outcomes

    def delete(self, name: str) -> int:
        """Remove a document and all its chunks; return how many chunks went."""
        record = self.store.get_record(name)
        if record is None:
            raise UnknownDocument(f"no document named {name!r} in the store", fix="`python -m rag docs` lists them")
        count = len(self.store.chunk_ids({"source": name}))
        # Record first: once it is gone the document no longer counts, even if deleting chunks is cut off.
        self.store.delete_record(name)
        self.store.committed(removed=[name])
        self.store.delete_chunks({"source": name})
        return count

    def documents(self) -> list[DocumentRecord]:
        return self.store.list_records()

    def repair(self) -> int:
        """Remove chunks no document record vouches for (left by an interrupted ingest); return how many."""
        committed = {(r.name, r.sha256) for r in self.store.list_records()}
        stray = {pair for pair in self.store.chunk_sources() if pair not in committed}
        removed = 0
        for name, sha in stray:
            ids = self.store.chunk_ids({"$and": [{"source": name}, {"doc_sha": sha}]})
            self.store.delete_chunks({"$and": [{"source": name}, {"doc_sha": sha}]})
            removed += len(ids)
        return removed


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named, and files under folders named (sorted, hidden ones skipped). A missing path is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise RagError(f"no such file or folder: {path}")
    return files
