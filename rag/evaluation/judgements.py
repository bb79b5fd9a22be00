"""Relevance judgements of the user's own questions: which chunks answer each question, kept in one JSON file.

A judgement says of one chunk whether it answers one question. Chunks are named by their id, a hash of the
document and the chunk's place and text (`rag.documents.library.split_document`), so a document that is replaced or
deleted takes its chunk ids with it: judgements of chunks that no longer exist are *stale*, and
`rag.evaluation.judgement_scores` reports them instead of scoring them as chunks that merely ranked badly. Each
judgement keeps the file, page and a snapshot of the text, so that a stale one can still be shown.

The file (`Settings.judgements_path`) is written whole to a temporary file and moved over the old one, so a crash
never leaves half a file. A file that cannot be read is never overwritten: `load` raises `CorruptJudgements` and
`move_aside` is the way to start over. The same JSON is the export format; CSV is the other one (`to_csv`,
`from_csv`): one row per judged chunk, or just a `question` column to import questions to judge.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ..errors import CorruptJudgements, JudgementsError
from ..files import move_aside as move_file_aside
from ..results import Source

FORMAT = "rag-judgements"
VERSION = 1
SNAPSHOT_CHARS = 300
MAX_QUESTION_CHARS = 1000
CSV_COLUMNS = ("question", "chunk_id", "file", "page", "relevant", "text")
_TRUE = {"yes", "y", "true", "1", "relevant"}
_FALSE = {"no", "n", "false", "0", "not relevant"}
# A cell starting with one of these is a formula to a spreadsheet; documents are untrusted, so exported text cells
# that start so get a leading apostrophe (and so do cells that start with one, so that import can take it off).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")
# One process serves every browser session: their read-change-write cycles on the file take turns.
_FILE_LOCK = threading.Lock()
T = TypeVar("T")


@dataclass
class Judgement:
    """Whether one chunk answers one question, with where the chunk came from and the start of its text."""

    chunk_id: str
    file: str
    page: int | None
    text: str
    relevant: bool

    @property
    def location(self) -> str:
        return f"{self.file}, p. {self.page}" if self.page else self.file

    @classmethod
    def of(cls, source: Source, relevant: bool) -> "Judgement":
        return cls(source.chunk_id, source.file, source.page, source.text.strip()[:SNAPSHOT_CHARS], relevant)


@dataclass
class JudgedQuestion:
    """A question and its judged chunks, by chunk id. Chunks nobody judged count as not relevant."""

    question: str
    judgements: dict[str, Judgement] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A short stable id of the question (for widget keys and file-safe names)."""
        return hashlib.sha256(self.question.encode("utf-8")).hexdigest()[:12]

    def relevant_ids(self) -> set[str]:
        return {i for i, j in self.judgements.items() if j.relevant}


@dataclass
class Judgements:
    """Every judged question, in the order they were added."""

    questions: list[JudgedQuestion] = field(default_factory=list)

    def find(self, question: str) -> JudgedQuestion | None:
        wanted = normalize_question(question)
        return next((q for q in self.questions if q.question == wanted), None)

    def add_question(self, question: str) -> tuple[JudgedQuestion, bool]:
        """The question (whitespace tidied), added unless it is there already; and whether it was added."""
        text = normalize_question(question)
        if not text:
            raise JudgementsError("the question is empty")
        if len(text) > MAX_QUESTION_CHARS:
            raise JudgementsError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        found = self.find(text)
        if found:
            return found, False
        self.questions.append(JudgedQuestion(text))
        return self.questions[-1], True

    def remove_question(self, question: str) -> bool:
        found = self.find(question)
        if found:
            self.questions.remove(found)
        return found is not None

    def judge(self, question: str, shown: Iterable[Source | Judgement], relevant: set[str]) -> JudgedQuestion:
        """Record a judgement of every chunk shown: relevant when its id is in `relevant`, else not relevant."""
        judged, _ = self.add_question(question)
        for item in shown:
            if isinstance(item, Source):
                judged.judgements[item.chunk_id] = Judgement.of(item, item.chunk_id in relevant)
            else:
                judged.judgements[item.chunk_id] = Judgement(item.chunk_id, item.file, item.page, item.text,
                                                             item.chunk_id in relevant)
        return judged

    def forget(self, question: str, chunk_ids: Iterable[str]) -> int:
        """Drop the judgements of these chunks (e.g. the stale ones); return how many went."""
        found = self.find(question)
        if not found:
            return 0
        gone = [i for i in chunk_ids if found.judgements.pop(i, None) is not None]
        return len(gone)

    def merge(self, other: "Judgements") -> tuple[int, int]:
        """Add `other`'s questions and judgements; where both judged a chunk, `other` wins.
        Returns (questions added, judgements taken)."""
        added = taken = 0
        for incoming in other.questions:
            judged, new = self.add_question(incoming.question)
            added += new
            judged.judgements.update(incoming.judgements)
            taken += len(incoming.judgements)
        return added, taken

    def chunk_ids(self) -> set[str]:
        return {i for q in self.questions for i in q.judgements}

    def files(self) -> set[str]:
        return {j.file for q in self.questions for j in q.judgements.values()}


def normalize_question(text: str) -> str:
    return " ".join(str(text).split())


# -- JSON


def to_dict(judgements: Judgements) -> dict[str, Any]:
    return {
        "format": FORMAT, "version": VERSION,
        "questions": [{"question": q.question,
                       "judgements": [{"chunk_id": j.chunk_id, "file": j.file, "page": j.page, "text": j.text,
                                       "relevant": j.relevant} for j in q.judgements.values()]}
                      for q in judgements.questions],
    }


def to_json(judgements: Judgements) -> str:
    return json.dumps(to_dict(judgements), ensure_ascii=False, indent=1) + "\n"


def from_json(data: str | bytes, origin: str) -> Judgements:
    """Judgements from the JSON `to_json` writes; JudgementsError naming `origin` and the fault otherwise."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise JudgementsError(f"{origin} is not valid JSON ({exc})") from exc
    return _from_dict(raw, origin)


def _from_dict(raw: Any, origin: str) -> Judgements:
    def bad(where: str, what: str) -> JudgementsError:
        return JudgementsError(f"{origin} is not a judgements file: {where} {what}")

    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise bad("its top level", f'is not an object with "format": "{FORMAT}"')
    if raw.get("version") != VERSION:
        raise bad('"version"', f"is {raw.get('version')!r}; this app reads version {VERSION}")
    if not isinstance(raw.get("questions"), list):
        raise bad('"questions"', "is not a list")
    judgements = Judgements()
    for n, item in enumerate(raw["questions"]):
        where = f"questions[{n}]"
        if not isinstance(item, dict) or not isinstance(item.get("question"), str):
            raise bad(where, 'has no "question" text')
        if not isinstance(item.get("judgements", []), list):
            raise bad(f"{where}.judgements", "is not a list")
        try:
            judged, _ = judgements.add_question(item["question"])
        except JudgementsError as exc:
            raise bad(where, f"has a bad question: {exc.message}") from None
        for m, j in enumerate(item.get("judgements", [])):
            judgement = _judgement(j)
            if judgement is None:
                raise bad(f"{where}.judgements[{m}]", "needs chunk_id, file (text), page (number or null), "
                          "text (text) and relevant (true or false)")
            judged.judgements[judgement.chunk_id] = judgement
    return judgements


def _judgement(j: Any) -> Judgement | None:
    if not isinstance(j, dict):
        return None
    chunk_id, file, page, text, relevant = (j.get(k) for k in ("chunk_id", "file", "page", "text", "relevant"))
    page_ok = page is None or (isinstance(page, int) and not isinstance(page, bool))  # JSON true is no page number
    if not (isinstance(chunk_id, str) and chunk_id and isinstance(file, str) and isinstance(text, str)
            and isinstance(relevant, bool) and page_ok):
        return None
    return Judgement(chunk_id, file, page, text, relevant)


# -- the file


def load(path: Path) -> Judgements:
    """The saved judgements; none yet when the file does not exist. CorruptJudgements when it cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Judgements()
    except OSError as exc:
        raise CorruptJudgements(f"cannot read the judgements file {path}: {exc.strerror or exc}", path,
                                fix="check the file's permissions, or set RAG_JUDGEMENTS_PATH to another file") from exc
    try:
        return from_json(data, f"the judgements file {path}")
    except JudgementsError as exc:
        raise CorruptJudgements(exc.message, path, fix=(
            "it was left as it is: repair it by hand, or move it aside and start with no judgements "
            "(the Evaluate page offers to)")) from exc


def save(judgements: Judgements, path: Path) -> None:
    """Write the whole file atomically: a temporary file beside it, flushed to disk, then moved over it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise JudgementsError(f"cannot write the judgements file {path}: {exc.strerror or exc}",
                              fix="check the folder's permissions, or set RAG_JUDGEMENTS_PATH") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(to_json(judgements))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise JudgementsError(f"cannot write the judgements file {path}: {exc.strerror or exc}",
                              fix="check the disk space and the folder's permissions") from exc


def update(path: Path, change: Callable[[Judgements], T]) -> T:
    """Load, apply `change`, save; one at a time in this process. A corrupt file raises and is not touched."""
    with _FILE_LOCK:
        judgements = load(path)
        result = change(judgements)
        save(judgements, path)
        return result


def move_aside(path: Path, now: datetime | None = None) -> Path:
    """Rename an unreadable judgements file to `<name>.corrupt-<time>` beside it (kept, not deleted); return it."""
    with _FILE_LOCK:
        try:
            return move_file_aside(path, now)
        except OSError as exc:
            raise JudgementsError(f"cannot move {path} aside: {exc.strerror or exc}",
                                  fix=f"move or delete {path} yourself") from exc


# -- CSV


def to_csv(judgements: Judgements) -> str:
    """One row per judged chunk (columns CSV_COLUMNS); a question with no judgements yet gets one row of its own."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for q in judgements.questions:
        rows = [[q.question, j.chunk_id, j.file, "" if j.page is None else j.page, "yes" if j.relevant else "no",
                 j.text] for j in q.judgements.values()] or [[q.question, "", "", "", "", ""]]
        writer.writerows([_cell(c) for c in row] for row in rows)
    return out.getvalue()


def _cell(value: object) -> str:
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_FORMULA_START) else text


def from_csv(data: bytes, origin: str) -> Judgements:
    """Questions, and judgements where the rows have them, from a CSV with a header row.

    Only a `question` column is required (one question per row; repeated questions are merged). With a `chunk_id`
    column, a row whose chunk_id is filled is a judgement and needs `relevant` (yes/no, true/false, 1/0); `file`,
    `page` and `text` are optional. Other columns are ignored. The delimiter is the first of , ; or tab in the
    header line (none there: one column, each line one question); UTF-8 text, with or without a byte-order mark.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JudgementsError(f"{origin} is not UTF-8 text", fix="save the CSV as UTF-8 and import it again") from exc
    header = text.lstrip("\n").split("\n", 1)[0]
    # A header of one column means one cell per line, commas and all (a list of questions pasted into a file).
    delimiter = next((d for d in (",", ";", "\t") if d in header), "\x1f")
    reader = csv.DictReader(io.StringIO(text.lstrip("\n"), newline=""), delimiter=delimiter)
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    if "question" not in columns:
        found = ", ".join(repr(c) for c in columns if c) or "none"
        raise JudgementsError(f"{origin} has no 'question' column (its columns: {found})",
                              fix="put a header row with a column named question, one question per row")
    judgements = Judgements()
    try:
        for row in reader:
            # Cells are trimmed, except the text snapshot, which is kept exactly as exported.
            cells = {k: (row.get(name) or "") if k == "text" else (row.get(name) or "").strip()
                     for k, name in columns.items()}
            _read_row(judgements, cells, reader.line_num, origin)
    except csv.Error as exc:
        raise JudgementsError(f"{origin} is not a readable CSV (line {reader.line_num}: {exc})") from exc
    return judgements


def _read_row(judgements: Judgements, row: Mapping[str, str], line: int, origin: str) -> None:
    question = _uncell(row["question"])
    if not question:
        return  # a blank line or a row of empty cells
    try:
        judged, _ = judgements.add_question(question)
    except JudgementsError as exc:
        raise JudgementsError(f"{origin}, line {line}: {exc.message}") from None
    chunk_id = row.get("chunk_id", "")
    if not chunk_id:
        return
    relevant, page = row.get("relevant", "").lower(), row.get("page", "")
    if relevant not in _TRUE | _FALSE:
        raise JudgementsError(f"{origin}, line {line}: 'relevant' must be yes or no, not {row.get('relevant', '')!r}")
    if page and not page.isdigit():
        raise JudgementsError(f"{origin}, line {line}: 'page' must be a whole number, not {page!r}")
    judged.judgements[chunk_id] = Judgement(chunk_id, _uncell(row.get("file", "")), int(page) if page else None,
                                            _uncell(row.get("text", "")), relevant in _TRUE)
