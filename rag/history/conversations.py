"""Saved chat conversations: every turn with the sources that were sent, in one SQLite file beside the store.

The file (`Settings.conversations_file`) is the standard library's sqlite3, marked as ours by `PRAGMA
application_id` and versioned by `PRAGMA user_version`:

    conversations(id, title, created_at, updated_at)
    turns(id, conversation_id, number, question, standalone_question, answer, outcome, error, fix, cut_off,
          reranked, reranker, hybrid, embedder, citations, dropped_citations, evidence, sentences, sent,
          timings, created_at, rerank_notice)   -- the JSON columns hold what is only ever read back whole
    sources(turn_id, number, chunk_id, file, page, start_index, text, bi_rank, bi_score, ce_rank, ce_score)

Several sessions of the app (browser tabs) and the CLI write it at once: it is in WAL mode, every connection
waits for a busy lock (`timeout`), and every write is one `BEGIN IMMEDIATE` transaction, so a turn's number is
taken under the write lock and no turn is lost or numbered twice. A file that cannot be read (corrupt, not ours,
or of a newer schema) is never written: every operation raises `UnreadableConversations`, and `move_aside` is the
way to start over. Nothing here talks to the network; in Chroma server mode the file still lives on this machine.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

from ..errors import ConversationsError, UnreadableConversations
from ..files import move_aside as move_file_aside
from ..results import Answer, AnswerSentence, Evidence, Source, Timings
from ..text import snippet

SCHEMA_VERSION = 2  # 2: turns.rerank_notice
APPLICATION_ID = 0x52414743  # "RAGC": tells our file from any other SQLite database at the same path
MAX_TITLE = 120
_SQLITE_COMPANIONS = ("-wal", "-shm")
_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE turns (
    id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    number INTEGER NOT NULL, question TEXT NOT NULL, standalone_question TEXT NOT NULL, answer TEXT NOT NULL,
    outcome TEXT, error TEXT, fix TEXT, cut_off INTEGER NOT NULL, reranked INTEGER NOT NULL, reranker TEXT,
    hybrid INTEGER NOT NULL, embedder TEXT, citations TEXT NOT NULL, dropped_citations TEXT NOT NULL,
    evidence TEXT NOT NULL, sentences TEXT NOT NULL, sent TEXT NOT NULL, timings TEXT NOT NULL,
    created_at TEXT NOT NULL, rerank_notice TEXT,
    UNIQUE (conversation_id, number));
CREATE TABLE sources (
    turn_id INTEGER NOT NULL REFERENCES turns(id) ON DELETE CASCADE, position INTEGER NOT NULL,
    number INTEGER, chunk_id TEXT NOT NULL, file TEXT NOT NULL, page INTEGER, start_index INTEGER NOT NULL,
    text TEXT NOT NULL, bi_rank INTEGER NOT NULL, bi_score REAL NOT NULL, ce_rank INTEGER, ce_score REAL,
    PRIMARY KEY (turn_id, position));
CREATE INDEX conversations_by_update ON conversations(updated_at);
"""
_TURN_COLUMNS = ("number", "question", "standalone_question", "answer", "outcome", "error", "fix", "cut_off",
                 "reranked", "reranker", "hybrid", "embedder", "citations", "dropped_citations", "evidence",
                 "sentences", "sent", "timings", "created_at", "rerank_notice")
_SOURCE_COLUMNS = ("number", "chunk_id", "file", "page", "start_index", "text", "bi_rank", "bi_score", "ce_rank",
                   "ce_score")

SourceState = Literal["current", "replaced", "deleted"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class SavedTurn:
    """One question and what became of it, as saved: the answer, and the sources exactly as they were sent.

    `standalone_question` is what retrieval used (the question itself unless a follow-up was rewritten); `error`
    and `fix` are the message the turn ended with, if any; `number` is its place in the conversation (from 1),
    given when it is saved.
    """

    question: str
    standalone_question: str
    answer: str = ""
    outcome: str | None = None
    sources: list[Source] = field(default_factory=list)
    evidence: dict[int, list[Evidence]] = field(default_factory=dict)
    sentences: list[AnswerSentence] = field(default_factory=list)
    sent: dict[int, str] = field(default_factory=dict)
    """What the LLM read of each source, by number (the whole chunk, a window of it or its evidence sentences,
    as the setting `context` was); a source none of whose text was sent has no entry."""
    citations: list[int] = field(default_factory=list)
    dropped_citations: list[int] = field(default_factory=list)
    cut_off: bool = False
    error: str | None = None
    fix: str | None = None
    reranked: bool = False
    reranker: str | None = None
    rerank_notice: str | None = None
    """Why the sources are in the bi-encoder's order although reranking was asked for (the cross-encoder failed)."""
    hybrid: bool = False
    embedder: str | None = None
    timings: Timings = field(default_factory=Timings)
    number: int = 0
    created_at: str = ""

    @property
    def rewritten(self) -> bool:
        return self.standalone_question != self.question

    @classmethod
    def from_answer(cls, answer: Answer) -> "SavedTurn":
        """The turn of an answer that has streamed (or stopped): what it said, and the ranking it came from."""
        ranking = answer.ranking
        return cls(question=answer.question, standalone_question=answer.standalone_question, answer=answer.text,
                   outcome=answer.outcome, sources=list(answer.sources), evidence=dict(answer.evidence),
                   sentences=list(answer.sentences), sent={s.number: s.text for s in answer.sent if s.number},
                   citations=list(answer.citations),
                   dropped_citations=list(answer.dropped_citations), cut_off=answer.cut_off,
                   reranked=ranking.reranked, reranker=ranking.reranker, rerank_notice=ranking.rerank_notice,
                   hybrid=ranking.hybrid,
                   embedder=ranking.embedder, timings=ranking.timings)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = {str(n): spans for n, spans in data["evidence"].items()}
        data["sent"] = {str(n): text for n, text in data["sent"].items()}
        return data


@dataclass(frozen=True)
class Conversation:
    """A saved conversation as listed: `title` is its first question until it is renamed."""

    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int


class ChunkLookup(Protocol):
    """What `source_states` needs of the document store (`rag.retrieval.store.Store` has both)."""

    def chunk_ids(self, where: dict[str, Any] | None = None) -> list[str]: ...

    def get_records(self, names: list[str]) -> list[Any]: ...


class ConversationStore:
    """The conversations in one SQLite file. Cheap to make: every call opens its own connection, so one object
    serves every thread (each browser session runs in its own)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout

    # -- reading
    def list(self) -> list[Conversation]:
        """Every conversation, the one most recently added to first."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT c.id, c.title, c.created_at, c.updated_at, COUNT(t.id) FROM conversations c "
                "LEFT JOIN turns t ON t.conversation_id = c.id GROUP BY c.id "
                "ORDER BY c.updated_at DESC, c.rowid DESC").fetchall()
        return [Conversation(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation:
        found = next((c for c in self.list() if c.id == conversation_id), None)
        if found is None:
            raise ConversationsError(f"no saved conversation {conversation_id!r}",
                                     fix="list them with `python -m rag conversations list`")
        return found

    def find(self, prefix: str) -> Conversation:
        """The conversation whose id starts with `prefix` (as `list` shows them), if exactly one does."""
        matches = [c for c in self.list() if c.id.startswith(prefix.strip())] if prefix.strip() else []
        if len(matches) != 1:
            raise ConversationsError(
                f"{'several' if matches else 'no'} saved conversations have an id starting with {prefix!r}",
                fix="give more of the id, as `python -m rag conversations list` shows it")
        return matches[0]

    def turns(self, conversation_id: str) -> list[SavedTurn]:
        """The turns of a conversation, in order, each with its sources in the order they were shown."""
        with self._connect() as con:
            turns = con.execute(f"SELECT id, {', '.join(_TURN_COLUMNS)} FROM turns WHERE conversation_id = ? "
                                "ORDER BY number", (conversation_id,)).fetchall()
            sources = con.execute(
                f"SELECT turn_id, {', '.join(_SOURCE_COLUMNS)} FROM sources WHERE turn_id IN "
                "(SELECT id FROM turns WHERE conversation_id = ?) ORDER BY turn_id, position",
                (conversation_id,)).fetchall()
        by_turn: dict[int, list[Source]] = {}
        for row in sources:
            by_turn.setdefault(row[0], []).append(_source(row[1:]))
        return [_turn(row[1:], by_turn.get(row[0], [])) for row in turns]

    # -- writing
    def save_turn(self, conversation_id: str | None, turn: SavedTurn) -> str:
        """Append `turn` to the conversation (a new one, titled by its question, when `conversation_id` is None);
        return the conversation's id. `turn.number` and `turn.created_at` are set to what was saved."""
        stamp = now()
        with self._connect(write=True) as con:
            if conversation_id is None:
                conversation_id = uuid.uuid4().hex
                con.execute("INSERT INTO conversations VALUES (?, ?, ?, ?)",
                            (conversation_id, title_of(turn.question), stamp, stamp))
            elif not con.execute("UPDATE conversations SET updated_at = ? WHERE id = ?",
                                 (stamp, conversation_id)).rowcount:
                raise ConversationsError("this conversation was deleted (in another tab or from the command line)",
                                         fix="start a new chat")
            (last,) = con.execute("SELECT COALESCE(MAX(number), 0) FROM turns WHERE conversation_id = ?",
                                  (conversation_id,)).fetchone()
            turn.number, turn.created_at = last + 1, stamp
            values = _turn_row(turn)
            cursor = con.execute(
                f"INSERT INTO turns (conversation_id, {', '.join(_TURN_COLUMNS)}) "
                f"VALUES (?, {', '.join('?' * len(_TURN_COLUMNS))})", (conversation_id, *values))
            con.executemany(
                f"INSERT INTO sources (turn_id, position, {', '.join(_SOURCE_COLUMNS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(_SOURCE_COLUMNS))})",
                [(cursor.lastrowid, i, *(getattr(s, c) for c in _SOURCE_COLUMNS)) for i, s in enumerate(turn.sources)])
        return conversation_id

    def rename(self, conversation_id: str, title: str) -> str:
        """Give the conversation a title of its own (whitespace tidied); return it."""
        clean = title_of(title)
        if not clean:
            raise ConversationsError("the new title is empty")
        with self._connect(write=True) as con:
            if not con.execute("UPDATE conversations SET title = ? WHERE id = ?", (clean, conversation_id)).rowcount:
                raise ConversationsError(f"no saved conversation {conversation_id!r}")
        return clean

    def delete(self, conversation_id: str) -> bool:
        """Delete the conversation with its turns and sources; False if there was none."""
        with self._connect(write=True) as con:
            return bool(con.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount)

    def delete_all(self) -> int:
        """Delete every conversation; return how many there were."""
        with self._connect(write=True) as con:
            return con.execute("DELETE FROM conversations").rowcount

    def move_aside(self, when: datetime | None = None) -> Path:
        """Rename an unreadable file (with its -wal and -shm) to `<name>.corrupt-<time>`; return the new path."""
        try:
            return move_file_aside(self.path, when, companions=_SQLITE_COMPANIONS)
        except OSError as exc:
            raise ConversationsError(f"cannot move {self.path} aside: {exc.strerror or exc}",
                                     fix=f"move or delete {self.path} yourself") from exc

    # -- the file
    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A checked connection; with `write`, inside one immediate transaction that commits at the end.

        Reading a file that does not exist yet gives an empty store without making the file."""
        con = None
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            if write or self.path.exists():
                con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            if con is None or not self._check(con, write):
                if con is not None:
                    con.close()
                con = _empty()  # nothing saved yet: read as no conversations, without making the file
            con.execute("PRAGMA foreign_keys = ON")
            if write:
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # locked, read-only, disk full: the file itself is fine
            raise ConversationsError(f"cannot {'write' if write else 'read'} the conversations file {self.path}: "
                                     f"{exc}", fix="check the disk and the file's permissions, or try again") from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise self._unreadable(f"the conversations file {self.path} is damaged ({exc})") from exc
        except OSError as exc:
            raise ConversationsError(f"cannot open the conversations file {self.path}: {exc.strerror or exc}",
                                     fix="check the folder's permissions, or set RAG_CONVERSATIONS_PATH") from exc
        finally:
            if con is not None:
                if con.in_transaction:
                    con.rollback()
                con.close()

    def _check(self, con: sqlite3.Connection, write: bool) -> bool:
        """Refuse a file that is not ours or is of a newer schema; bring one of an older schema up to this one
        (reading too). Make the tables in a new (empty) file when writing, in WAL mode; return whether the file
        has them."""
        app, version = _header(con)
        if (app, version) == (0, 0):
            if con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
                raise self._unreadable(f"{self.path} is an SQLite database of something else, not saved conversations")
            if not write:
                return False  # an empty file reads as no conversations; the first write makes the tables
            con.execute("PRAGMA journal_mode = WAL")  # persistent; outside a transaction, as SQLite requires
            con.execute("BEGIN IMMEDIATE")
            if _header(con) == (0, 0):  # another process may have made the tables while this one waited
                for statement in _statements():
                    con.execute(statement)
            con.execute("COMMIT")
            return True
        if app != APPLICATION_ID:
            raise self._unreadable(f"{self.path} is an SQLite database of something else, not saved conversations")
        if version > SCHEMA_VERSION:
            raise self._unreadable(
                f"the conversations file {self.path} was written by a newer version of this app (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION})",
                fix="update the app; or move the file aside and start with no conversations (the Chat page offers "
                    "to), or set RAG_CONVERSATIONS_PATH to another file")
        if version < SCHEMA_VERSION:
            self._upgrade(con)
        return True

    def _upgrade(self, con: sqlite3.Connection) -> None:
        """Bring a file of an older schema up to this one, in one transaction (another process may be at it too)."""
        con.execute("BEGIN IMMEDIATE")
        version = _header(con)[1]
        for step in _UPGRADES[version - 1:]:
            con.execute(step)
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.execute("COMMIT")

    def _unreadable(self, message: str, fix: str | None = None) -> UnreadableConversations:
        return UnreadableConversations(message, self.path, fix=fix or (
            "it was left as it is: move it aside and start with no conversations (the Chat page offers to, and "
            "`python -m rag conversations move-aside` does it), or set RAG_CONVERSATIONS_PATH to another file"))


# _UPGRADES[n - 1] takes a file of schema n to n + 1.
_UPGRADES = ("ALTER TABLE turns ADD COLUMN rerank_notice TEXT",)


def _statements() -> list[str]:
    """The schema, then the marks that make the file ours, as single statements (so that they run inside the
    caller's transaction: `executescript` would commit it first)."""
    return [*(s.strip() for s in _SCHEMA.split(";") if s.strip()), f"PRAGMA application_id = {APPLICATION_ID}",
            f"PRAGMA user_version = {SCHEMA_VERSION}"]


def _empty() -> sqlite3.Connection:
    con = sqlite3.connect(":memory:", isolation_level=None)
    for statement in _statements():
        con.execute(statement)
    return con


def _header(con: sqlite3.Connection) -> tuple[int, int]:
    return con.execute("PRAGMA application_id").fetchone()[0], con.execute("PRAGMA user_version").fetchone()[0]


def title_of(text: str) -> str:
    """A title from a question (or a new title): whitespace tidied, at most MAX_TITLE characters."""
    return snippet(str(text), MAX_TITLE)


def _turn_row(turn: SavedTurn) -> tuple:
    values = dict(
        number=turn.number, question=turn.question, standalone_question=turn.standalone_question,
        answer=turn.answer, outcome=turn.outcome, error=turn.error, fix=turn.fix, cut_off=int(turn.cut_off),
        reranked=int(turn.reranked), reranker=turn.reranker, hybrid=int(turn.hybrid), embedder=turn.embedder,
        citations=json.dumps(turn.citations), dropped_citations=json.dumps(turn.dropped_citations),
        evidence=json.dumps({str(n): [e.to_dict() for e in spans] for n, spans in turn.evidence.items()}),
        sentences=json.dumps([s.to_dict() for s in turn.sentences]),
        sent=json.dumps({str(n): text for n, text in turn.sent.items()}), timings=json.dumps(turn.timings.to_dict()),
        created_at=turn.created_at, rerank_notice=turn.rerank_notice)
    return tuple(values[c] for c in _TURN_COLUMNS)


def _turn(row: Iterable[Any], sources: list[Source]) -> SavedTurn:
    v = dict(zip(_TURN_COLUMNS, row))
    return SavedTurn(
        question=v["question"], standalone_question=v["standalone_question"], answer=v["answer"],
        outcome=v["outcome"], sources=sources,
        evidence={int(n): [Evidence(**e) for e in spans] for n, spans in json.loads(v["evidence"]).items()},
        sentences=[AnswerSentence(**s) for s in json.loads(v["sentences"])],
        sent={int(n): text for n, text in json.loads(v["sent"]).items()},
        citations=json.loads(v["citations"]), dropped_citations=json.loads(v["dropped_citations"]),
        cut_off=bool(v["cut_off"]), error=v["error"], fix=v["fix"], reranked=bool(v["reranked"]),
        reranker=v["reranker"], rerank_notice=v["rerank_notice"], hybrid=bool(v["hybrid"]), embedder=v["embedder"],
        timings=Timings(**json.loads(v["timings"])), number=v["number"], created_at=v["created_at"])


def _source(row: Iterable[Any]) -> Source:
    return Source(**dict(zip(_SOURCE_COLUMNS, row)))


def source_states(store: ChunkLookup, turns: Iterable[SavedTurn]) -> dict[str, SourceState]:
    """chunk id -> "current", "replaced" or "deleted" for every source of `turns`, against the store as it is now.

    A chunk id is a hash of its document's content (`rag.documents.library.split_document`), so a chunk whose id the
    store no longer holds belongs to a document that was since replaced (its name is still there) or deleted (gone).
    """
    sources = [s for t in turns for s in t.sources]
    if not sources:
        return {}
    files = sorted({s.file for s in sources})
    present = set(store.chunk_ids({"source": {"$in": files}}))
    named = {r.name for r in store.get_records(files)}
    return {s.chunk_id: "current" if s.chunk_id in present else "replaced" if s.file in named else "deleted"
            for s in sources}
