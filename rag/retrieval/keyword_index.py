"""A persistent BM25 keyword index: an SQLite file (the durable, transactional part) and postings in memory.

Why this design (issue 10 part 4). Chroma 1.5.9's own sparse/BM25 index was tried first: a collection whose `Schema`
has a `SparseVectorIndexConfig` with `ChromaBm25EmbeddingFunction` is refused both by `PersistentClient` and by a
`chroma run` server ("Sparse vector indexing is not enabled in local"), and `Collection.search` (`Search` + `Rrf`) is
documented as working only on distributed and hosted Chroma. SQLite FTS5 was tried next: its `bm25()` is built in,
but it scores every chunk that shares any word with the question, and questions always have common words: in a
one-off trial on 100,000 synthetic chunks (on the shared CPU while it was loaded) it took 300 ms per query, 150 ms
with words in over half the chunks dropped, which also changed the ranking. `bm25s` is fast but static: any ingest or
delete means a rebuild. So:

- the file holds every committed chunk's text and metadata and the (name, hash) of each document it covers, written
  in one SQLite transaction per change: the index is never half-written and survives restarts;
- in memory, per word, the chunks that contain it and how often (compact arrays), built from the file on first search
  and then updated in place by each write. A query touches only its words' postings, with numpy; it scores exactly as
  `rank_bm25.BM25Okapi` (k1 1.5, b 0.75, a floor of 0.25 x the mean idf for words in over half the chunks), which
  the hybrid search used before, so rankings (and SciFact's nDCG) are unchanged;
- another process writing the same file (the CLI beside the app, both on one Chroma server) is noticed by SQLite's
  `PRAGMA data_version`, and the memory catches up from the file.

This module knows nothing of Chroma: `rag.retrieval.hybrid` keeps it in step with the store's document registry.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from langchain_core.documents import Document

SCHEMA = 1
K1, B, EPSILON = 1.5, 0.75, 0.25  # rank_bm25.BM25Okapi's defaults
_WORD = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Postings:
    """Word -> (positions, counts) of the chunks held in memory; a position is dropped by marking it dead."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        self.positions: list[array] = []  # per word id: positions of the chunks that contain it
        self.counts: list[array] = []  # per word id: how often it occurs there
        self.df: array = array("i")  # per word id: live chunks that contain it
        self.lengths: array = array("i")  # per position: words in the chunk
        self.alive = bytearray()
        self.slots: array = array("q")  # per position: the chunk's row in the file
        self.words_of: list[array] = []  # per position: its distinct word ids (to undo df when it is dropped)
        self.by_name: dict[str, tuple[str, list[int]]] = {}  # document -> (its hash, its positions)
        self.live = 0
        self.total_length = 0
        self._idf: np.ndarray | None = None

    def add(self, name: str, sha: str, rows: Iterable[tuple[int, str]]) -> None:
        positions = []
        for slot, text in rows:
            tokens = tokenize(text)
            position = len(self.slots)
            ids = array("i")
            for word, count in Counter(tokens).items():
                wid = self.vocab.get(word)
                if wid is None:
                    wid = self.vocab[word] = len(self.positions)
                    self.positions.append(array("i"))
                    self.counts.append(array("i"))
                    self.df.append(0)
                self.positions[wid].append(position)
                self.counts[wid].append(count)
                self.df[wid] += 1
                ids.append(wid)
            self.slots.append(slot)
            self.lengths.append(len(tokens))
            self.alive.append(1)
            self.words_of.append(ids)
            self.live += 1
            self.total_length += len(tokens)
            positions.append(position)
        self.by_name[name] = (sha, positions)
        self._idf = None

    def remove(self, name: str) -> None:
        _, positions = self.by_name.pop(name, ("", []))
        for position in positions:
            if self.alive[position]:
                self.alive[position] = 0
                self.live -= 1
                self.total_length -= self.lengths[position]
                for wid in self.words_of[position]:
                    self.df[wid] -= 1
                self.words_of[position] = array("i")
        self._idf = None

    @property
    def dead(self) -> int:
        return len(self.slots) - self.live

    def idf(self) -> np.ndarray:
        """BM25Okapi's idf per word id over the live chunks (words no live chunk has are left out of the mean)."""
        if self._idf is None:
            df = np.frombuffer(self.df, dtype=np.int32).astype(np.float64) if len(self.df) else np.zeros(0)
            present = df > 0
            idf = np.log(self.live - df + 0.5) - np.log(df + 0.5) if self.live else np.zeros_like(df)
            mean = float(idf[present].mean()) if present.any() else 0.0
            idf = np.where(idf < 0, EPSILON * mean, idf)
            self._idf = np.where(present, idf, 0.0)
        return self._idf

    def top(self, query: str, k: int) -> list[int]:
        """Rows (in the file) of the k best chunks by BM25 among those sharing a word with the query."""
        if not self.live:
            return []
        idf = self.idf()
        lengths = np.frombuffer(self.lengths, dtype=np.int32)
        norm = K1 * (1 - B + B * lengths / (self.total_length / self.live))
        scores = np.zeros(len(self.slots))
        matched = np.zeros(len(self.slots), dtype=bool)
        for word in tokenize(query):  # a repeated word counts again, as in BM25Okapi.get_scores
            wid = self.vocab.get(word)
            if wid is None or not self.df[wid]:
                continue
            at = np.frombuffer(self.positions[wid], dtype=np.int32)
            tf = np.frombuffer(self.counts[wid], dtype=np.int32)
            scores[at] += idf[wid] * (tf * (K1 + 1) / (tf + norm[at]))  # the same float operations as BM25Okapi
            matched[at] = True
        found = np.flatnonzero(matched & np.frombuffer(bytes(self.alive), dtype=np.uint8).astype(bool))
        if len(found) > k:
            # Only the k best need sorting; ties at the cut-off keep the earlier chunk, as a stable sort would.
            cut = -np.partition(-scores[found], k - 1)[k - 1]
            found = found[scores[found] >= cut]
        best = found[np.argsort(-scores[found], kind="stable")][:k]
        return [int(self.slots[p]) for p in best]


class BM25Index:
    """The keyword index of one store: an SQLite file plus postings in memory; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        # held by rag.retrieval.hybrid.catch_up, so that one thread reconciles at a time
        self.sync_lock = threading.Lock()
        self.checked = False  # set by rag.retrieval.hybrid.catch_up once it has compared the index with the registry
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses at most the last commit, never consistency
        self._db.executescript(  # idempotent; executescript commits by itself
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS documents (name TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS chunks (
                slot INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, source TEXT NOT NULL,
                doc_sha TEXT NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source);
            """
        )
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
        self._memory: _Postings | None = None
        self._seen_version: int | None = None

    # -- writes: each is one transaction, and memory follows only once it has committed
    def put(self, documents: Sequence[tuple[str, str, Sequence[Document]]], synced: str | None = None) -> None:
        """Make each (name, hash, chunks) the document of that name, replacing any other version of it.

        `synced`, if given, is recorded in the same transaction: the store's change mark this brings the index to.
        """
        with self._lock:
            with self._transaction():
                for name, sha, chunks in documents:
                    self._db.execute("DELETE FROM chunks WHERE source = ?", (name,))
                    self._db.executemany(
                        "INSERT INTO chunks (id, source, doc_sha, text, metadata) VALUES (?, ?, ?, ?, ?)",
                        [(c.id, name, sha, c.page_content, json.dumps(c.metadata)) for c in chunks],
                    )
                    self._db.execute("INSERT OR REPLACE INTO documents VALUES (?, ?)", (name, sha))
                self._set_synced(synced)
            if self._memory is not None:
                for name, _, _ in documents:
                    self._memory.remove(name)
                    self._load(name)

    def remove(self, names: Sequence[str], synced: str | None = None) -> None:
        with self._lock:
            with self._transaction():
                for name in names:
                    self._db.execute("DELETE FROM chunks WHERE source = ?", (name,))
                    self._db.execute("DELETE FROM documents WHERE name = ?", (name,))
                self._set_synced(synced)
            if self._memory is not None:
                for name in names:
                    self._memory.remove(name)

    def set_synced(self, synced: str | None) -> None:
        with self._lock, self._transaction():
            self._set_synced(synced, clear=synced is None)

    def _set_synced(self, synced: str | None, clear: bool = False) -> None:
        if synced is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('synced', ?)", (str(synced),))
        elif clear:
            self._db.execute("DELETE FROM meta WHERE key = 'synced'")

    def clear(self) -> None:
        with self._lock:
            with self._transaction():
                self._db.execute("DELETE FROM chunks")
                self._db.execute("DELETE FROM documents")
                self._set_synced(None, clear=True)
            self._memory = None

    # -- reads
    def synced(self) -> str | None:
        """The store's change mark when the index last matched its registry (None: never, or it may have fallen
        behind)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'synced'").fetchone()
        return row[0] if row else None

    def documents(self) -> dict[str, str]:
        with self._lock:
            return dict(self._db.execute("SELECT name, sha256 FROM documents").fetchall())

    def search(self, query: str, k: int) -> list[Document]:
        """The k best chunks by BM25 that share a word with the query, best first."""
        with self._lock:
            self._follow_file()
            slots = self._memory.top(query, k)
            if not slots:
                return []
            marks = ",".join("?" * len(slots))
            rows = {slot: (cid, text, meta) for slot, cid, text, meta in self._db.execute(
                f"SELECT slot, id, text, metadata FROM chunks WHERE slot IN ({marks})", slots)}
        return [Document(page_content=rows[s][1], metadata=json.loads(rows[s][2]), id=rows[s][0])
                for s in slots if s in rows]

    def memory_stats(self) -> dict[str, int]:
        with self._lock:
            self._follow_file()
            m = self._memory
            return {"chunks": m.live, "dead": m.dead, "words": len(m.vocab),
                    "postings": sum(len(p) for p in m.positions)}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- memory
    def _follow_file(self) -> None:
        """Build the postings on first use; catch up if another connection (process) has written the file since."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        memory = self._memory
        if memory is not None and version == self._seen_version:
            if memory.dead > max(1000, memory.live):  # mostly dead positions: start afresh from the file
                self._memory = None
            else:
                return
        if self._memory is None:
            self._memory = _Postings()
            for name in self.documents():
                self._load(name)
        else:
            on_file, in_memory = self.documents(), {n: sha for n, (sha, _) in memory.by_name.items()}
            for name in in_memory.keys() - on_file.keys():
                memory.remove(name)
            for name, sha in on_file.items():
                if in_memory.get(name) != sha:
                    memory.remove(name)
                    self._load(name)
        self._seen_version = version

    def _load(self, name: str) -> None:
        row = self._db.execute("SELECT sha256 FROM documents WHERE name = ?", (name,)).fetchone()
        if row is None:
            return
        rows = self._db.execute("SELECT slot, text FROM chunks WHERE source = ? AND doc_sha = ? ORDER BY slot",
                                (name, row[0]))
        self._memory.add(name, row[0], rows)

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection runs in autocommit mode otherwise)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")

