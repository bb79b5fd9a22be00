"""Files the app keeps beside the store (judgements, conversations): moving an unreadable one aside."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path


def move_aside(path: Path, now: datetime | None = None, companions: Sequence[str] = ()) -> Path:
    """Rename `path` to `<name>.corrupt-<time>` beside it (kept, not deleted) and return the new path.

    `companions` are suffixes of files that belong to it (SQLite's `-wal` and `-shm`): each that exists moves with
    it, to the new name plus the same suffix, so that none is left to be mistaken for a new file's. Raises OSError.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    target, n = path.with_name(f"{path.name}.corrupt-{stamp}"), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    for suffix in companions:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.rename(target.with_name(target.name + suffix))
    return target
