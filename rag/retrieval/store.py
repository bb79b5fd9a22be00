"""The Chroma adapter: the only place that builds a Chroma client (embedded folder or server).

The chunk collection records which embedding model and dimension built it and refuses another. Beside it, a small
registry collection holds one record per document; a document counts as present only once its record is written
(the commit point of an ingest), so chunks without a matching record are leftovers of an interrupted write.
After each registry write, `committed` adds a record to a change-log collection (so that every app on a Chroma server
can tell that the documents changed) and updates the store's BM25 keyword index (`rag.retrieval.keyword_index`, a local
file: inside the store's folder, or in RAG_KEYWORD_INDEX_DIR with a server), which `rag.retrieval.hybrid` keeps in step.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from ..errors import EmbedderMismatch, RagError, StoreBusy, StoreUnavailable
from ..settings import Settings
from .embeddings import BiEncoder
from .keyword_index import BM25Index

SCHEMA_VERSION = 1
WRITE_BATCH = 256
# Chroma reads a whole collection in one SQL statement unless paged; at about 100k chunks that statement has more
# variables than SQLite allows ("too many SQL variables").
READ_PAGE = 5000
_REGISTRY_VECTOR = [1.0]  # registry records are looked up by id and metadata only; Chroma still wants a vector


@dataclass(frozen=True)
class DocumentRecord:
    """What the store knows of one document."""

    name: str
    sha256: str
    kind: str
    pages: int | None
    chunks: int
    size_bytes: int
    added_at: str

    def to_metadata(self) -> dict[str, Any]:
        meta = {k: v for k, v in self.__dict__.items() if v is not None}
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "DocumentRecord":
        return cls(
            name=str(meta["name"]), sha256=str(meta["sha256"]), kind=str(meta.get("kind", "")),
            pages=meta.get("pages"), chunks=int(meta.get("chunks", 0)), size_bytes=int(meta.get("size_bytes", 0)),
            added_at=str(meta.get("added_at", "")),
        )


def record_id(name: str) -> str:
    import hashlib

    return "doc-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:40]


class Store:
    """Chunks and document records in Chroma, embedded with one fixed bi-encoder."""

    def __init__(self, settings: Settings, embedder: BiEncoder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._lock = _FolderLock(settings.chroma_path) if not settings.uses_chroma_server else None
        try:
            with self.translate_errors():
                self._client = _make_client(settings)
                _finish_interrupted_rebuild(self._client, settings.collection)
                self._chunks = self._open_or_create_chunks()
                self._registry = self._client.get_or_create_collection(
                    f"{settings.collection}-registry", embedding_function=None
                )
                self._changes = self._client.get_or_create_collection(
                    f"{settings.collection}-changes", embedding_function=None
                )
            self._check_provenance(self._chunks.metadata or {})
            self.keywords = BM25Index(keyword_index_file(settings))
        except BaseException:
            self.close()
            raise
        from langchain_chroma import Chroma

        self.vectorstore = Chroma(
            client=self._client, collection_name=settings.collection, embedding_function=embedder,
            create_collection_if_not_exists=False,
        )

    def _open_or_create_chunks(self):
        """The chunk collection; created, with this embedder's provenance, only where it does not exist yet (so that
        opening an existing one needs no dimension, which a deferred embedder would load its model to know)."""
        from chromadb.errors import NotFoundError

        try:
            return self._client.get_collection(self.settings.collection, embedding_function=None)
        except NotFoundError:
            return self._client.get_or_create_collection(
                self.settings.collection, metadata=self.provenance(),
                configuration={"hnsw": hnsw_configuration(self.settings)}, embedding_function=None,
            )

    # -- provenance
    def provenance(self) -> dict[str, Any]:
        return provenance_of(self.embedder)

    def _check_provenance(self, meta: dict[str, Any]) -> None:
        model, dim = meta.get("embedding_model"), meta.get("embedding_dimension")
        if model != self.embedder.name:  # named alone: a deferred embedder would load to know its dimension
            configured = self.embedder.name
        elif dim != self.embedder.dimension:
            configured = f"{self.embedder.name} ({self.embedder.dimension} dimensions)"
        else:
            return
        built_with = f"{model} ({dim} dimensions)" if model else "an unknown embedder"
        raise EmbedderMismatch(
            f"collection '{self.settings.collection}' in the {self.settings.store_location} was built with "
            f"{built_with}, but the configured embedder is {configured}",
            fix=f"set RAG_EMBEDDING_MODEL={model} to use it, or run `python -m rag rebuild` to re-embed it"
            if model else "use another RAG_COLLECTION, or delete this one",
        )

    # -- errors
    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Report an unreachable Chroma server as StoreUnavailable with the fix, not a client traceback."""
        try:
            yield
        except (EmbedderMismatch, StoreUnavailable):
            raise
        except Exception as exc:
            if self.settings.uses_chroma_server and _is_connection_error(exc):
                raise server_unreachable(self.settings) from exc
            raise

    # -- chunks
    def count_chunks(self) -> int:
        with self.translate_errors():
            return self._chunks.count()

    def add_chunks(self, chunks: list[Document], vectors: list[list[float]]) -> None:
        """Upsert chunks (ids are content hashes, so writing a chunk twice changes nothing)."""
        with self.translate_errors():
            for start in range(0, len(chunks), WRITE_BATCH):
                batch = chunks[start : start + WRITE_BATCH]
                self._chunks.upsert(
                    ids=[c.id for c in batch],
                    documents=[c.page_content for c in batch],
                    metadatas=[c.metadata for c in batch],
                    embeddings=vectors[start : start + WRITE_BATCH],
                )

    def delete_chunks(self, where: dict[str, Any]) -> None:
        with self.translate_errors():
            self._chunks.delete(where=where)

    def chunk_ids(self, where: dict[str, Any] | None = None) -> list[str]:
        return read_all(self._chunks, where, [], self.translate_errors)["ids"]

    def chunk_sources(self) -> list[tuple[str, str]]:
        """(file name, document hash) of every chunk: for consistency checks and repair."""
        metas = read_all(self._chunks, None, ["metadatas"], self.translate_errors)["metadatas"]
        return [(str(m.get("source")), str(m.get("doc_sha"))) for m in metas]

    def get_chunks(self, where: dict[str, Any] | None = None) -> list[Document]:
        got = read_all(self._chunks, where, ["documents", "metadatas"], self.translate_errors)
        return [
            Document(page_content=text, metadata=meta or {}, id=cid)
            for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"])
        ]

    def search(self, query: str, k: int) -> list[tuple[Document, float]]:
        """The k chunks nearest to the query by the bi-encoder, with cosine similarity (higher is closer)."""
        with self.translate_errors():
            hits = self.vectorstore.similarity_search_with_score(query, k=k)
        # Chroma's cosine space returns a distance, 1 - cosine similarity.
        return [(doc, 1.0 - float(distance)) for doc, distance in hits]

    # -- the document registry
    def get_record(self, name: str) -> DocumentRecord | None:
        found = self.get_records([name])
        return found[0] if found else None

    def get_records(self, names: list[str]) -> list[DocumentRecord]:
        if not names:
            return []
        with self.translate_errors():
            metas = self._registry.get(ids=[record_id(n) for n in names], include=["metadatas"])["metadatas"] or []
        return [DocumentRecord.from_metadata(m) for m in metas]

    def count_documents(self) -> int:
        with self.translate_errors():
            return self._registry.count()

    def put_records(self, records: list[DocumentRecord]) -> None:
        with self.translate_errors():
            self._registry.upsert(
                ids=[record_id(r.name) for r in records], documents=[r.name for r in records],
                metadatas=[r.to_metadata() for r in records], embeddings=[_REGISTRY_VECTOR] * len(records),
            )

    def delete_record(self, name: str) -> None:
        with self.translate_errors():
            self._registry.delete(ids=[record_id(name)])

    def list_records(self) -> list[DocumentRecord]:
        metas = read_all(self._registry, None, ["metadatas"], self.translate_errors)["metadatas"]
        return sorted((DocumentRecord.from_metadata(m) for m in metas), key=lambda r: r.name.lower())

    # -- after a registry write
    def change_mark(self) -> str:
        """Which change log, and how many changes it holds: any committed write since changes it."""
        with self.translate_errors():
            return f"{self._changes.id}:{self._changes.count()}"

    def committed(self, put: Sequence[tuple[DocumentRecord, Sequence[Document]]] = (),
                  removed: Sequence[str] = ()) -> None:
        """Call right after a registry write (the commit point) with what it changed: logs the change for other
        apps on the same store, and updates the keyword index in one transaction of its own.

        The index records the new change mark only if it matched the mark just before this change and no one else
        wrote meanwhile; otherwise `rag.retrieval.hybrid.catch_up` reconciles it on its next search. A crash before the
        index write leaves it behind, never ahead: its mark then differs from the store's, or the next open reconciles.
        """
        before = self.keywords.synced()
        with self.translate_errors():
            self._changes.add(ids=[uuid.uuid4().hex], embeddings=[_REGISTRY_VECTOR])
        after = self.change_mark()
        synced = after if before is not None and _next_mark(before) == after else None
        if removed:
            self.keywords.remove(list(removed), synced=None if put else synced)
        if put:
            self.keywords.put([(r.name, r.sha256, chunks) for r, chunks in put], synced=synced)

    # -- lifecycle
    def drop_all(self) -> None:
        """Delete the collections and empty the keyword index (used by tests)."""
        with self.translate_errors():
            for suffix in ("", "-registry", "-changes"):
                with contextlib.suppress(Exception):
                    self._client.delete_collection(self.settings.collection + suffix)
        self.keywords.clear()

    def close(self) -> None:
        if getattr(self, "keywords", None) is not None:
            self.keywords.close()
            self.keywords = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


REBUILDING = "rag_rebuild_in_progress"


def read_all(collection, where: dict[str, Any] | None, include: list[str], translate_errors,
             page: int | None = None) -> dict[str, list]:
    """Every matching item of a collection, read READ_PAGE at a time: ids and each field in `include`."""
    page = page or READ_PAGE
    out: dict[str, list] = {"ids": [], **{field: [] for field in include}}
    while True:
        with translate_errors():
            got = collection.get(where=where, include=include, limit=page, offset=len(out["ids"]))
        for field in out:
            out[field] += got[field] or []
        if len(got["ids"]) < page:
            return out


def keyword_index_file(settings: Settings) -> Path:
    """The keyword index's file: in the store's folder when embedded; with a Chroma server, a file of this app's
    (RAG_KEYWORD_INDEX_DIR) named after the server and collection, since the server's disk is not ours."""
    if not settings.uses_chroma_server:
        return settings.chroma_path / f"keywords-{settings.collection}.sqlite3"
    server = re.sub(r"[^a-zA-Z0-9.-]", "_", f"{settings.chroma_host}-{settings.chroma_port}")
    return settings.keyword_index_dir / f"{server}-{settings.collection}.sqlite3"


def _next_mark(mark: str) -> str:
    log, _, count = mark.rpartition(":")
    return f"{log}:{int(count) + 1}" if count.isdigit() else ""


def hnsw_configuration(settings: Settings) -> dict[str, Any]:
    # Cosine, because the bi-encoder's vectors are unit length and its similarity is their dot product.
    return {"space": "cosine", "ef_search": settings.hnsw_ef_search}


def provenance_of(embedder: BiEncoder) -> dict[str, Any]:
    """What a chunk collection records about the embedder that built it."""
    return {"embedding_model": embedder.name, "embedding_dimension": embedder.dimension, "rag_schema": SCHEMA_VERSION}


def server_unreachable(settings: Settings) -> StoreUnavailable:
    return StoreUnavailable(
        f"no Chroma server answers at {settings.chroma_host}:{settings.chroma_port}",
        fix=f"start it with `chroma run --path DIR --host 127.0.0.1 --port {settings.chroma_port}`, "
        "or unset RAG_CHROMA_HOST to use a local folder",
    )


def rebuild(settings: Settings, embedder: BiEncoder, on_batch: Callable[[int, int], None] | None = None) -> int:
    """Re-embed every chunk of the collection with `embedder` (after a change of embedding model).

    The new vectors go into a side collection; the old collection is dropped and the new one takes its name only
    once it is complete, so an interruption leaves the old index usable. Chunk ids and document records stay.
    Returns the number of chunks re-embedded.
    """
    lock = _FolderLock(settings.chroma_path) if not settings.uses_chroma_server else None
    try:
        client = _make_client(settings)
        _finish_interrupted_rebuild(client, settings.collection)
        try:
            old = client.get_collection(settings.collection, embedding_function=None)
        except Exception as exc:
            raise RagError(f"there is no collection '{settings.collection}' to rebuild") from exc
        side = f"{settings.collection}-rebuild"
        with contextlib.suppress(Exception):
            client.delete_collection(side)
        provenance = provenance_of(embedder)
        new = client.create_collection(side, metadata={**provenance, REBUILDING: True},
                                       configuration={"hnsw": hnsw_configuration(settings)}, embedding_function=None)
        total, done = old.count(), 0
        while done < total:
            page = old.get(include=["documents", "metadatas"], limit=WRITE_BATCH, offset=done)
            if not page["ids"]:
                break
            new.add(ids=page["ids"], documents=page["documents"], metadatas=page["metadatas"],
                    embeddings=embedder.embed_documents(page["documents"] or []))
            done += len(page["ids"])
            if on_batch:
                on_batch(done, total)
        new.modify(metadata=provenance)
        client.delete_collection(settings.collection)
        new.modify(name=settings.collection)
        return done
    finally:
        if lock is not None:
            lock.release()


def _finish_interrupted_rebuild(client, name: str) -> None:
    """If a rebuild was cut off between dropping the old collection and renaming the new one, finish it."""
    names = {c.name if hasattr(c, "name") else str(c) for c in client.list_collections()}
    side = f"{name}-rebuild"
    if name not in names and side in names:
        rebuilt = client.get_collection(side, embedding_function=None)
        if not (rebuilt.metadata or {}).get(REBUILDING):
            rebuilt.modify(name=name)


def _make_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.uses_chroma_server:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as exc:
            raise server_unreachable(settings) from exc
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_path), settings=chroma_settings)


def _is_connection_error(exc: BaseException) -> bool:
    import httpx

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx.TransportError, ConnectionError)) or "Could not connect" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _FolderLock:
    """One process at a time per embedded Chroma folder: Chroma's embedded mode is not process-safe.

    Within a process the lock is shared (counted), since Chroma shares one client per folder there too.
    """

    _held: dict[str, tuple[Any, int]] = {}
    _guard = threading.Lock()

    def __init__(self, folder: Path) -> None:
        from filelock import FileLock, Timeout

        folder.mkdir(parents=True, exist_ok=True)
        self.key = str(folder.resolve())
        with self._guard:
            lock, count = self._held.get(self.key, (None, 0))
            if lock is None:
                lock = FileLock(os.path.join(self.key, ".rag-process.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    raise StoreBusy(
                        f"the store folder {folder} is in use by another process (the app or another command)",
                        fix="stop that process first, or run a Chroma server (`chroma run`) and set RAG_CHROMA_HOST "
                        "so that several processes can share the store",
                    ) from None
            self._held[self.key] = (lock, count + 1)

    def release(self) -> None:
        with self._guard:
            lock, count = self._held.get(self.key, (None, 0))
            if lock is None:
                return
            if count <= 1:
                lock.release()
                del self._held[self.key]
            else:
                self._held[self.key] = (lock, count - 1)
