"""One session saving turns, for the test of several sessions writing at once. A module of its own, importing only
the conversation store, so that a spawned process starts in a second rather than importing the models' libraries."""

from __future__ import annotations

from pathlib import Path

from rag.conversations import ConversationStore, SavedTurn
from rag.results import Source


def write_turns(path: str, conversation_id: str, writer: str, count: int, start) -> None:
    """Wait for the other sessions, then save `count` turns one after another, each a transaction."""
    store = ConversationStore(Path(path))
    start.wait()
    source = Source(chunk_id="c1", file="a.md", page=1, start_index=0, text="text", bi_rank=1, bi_score=0.5,
                    ce_rank=1, ce_score=0.9, number=1)
    for n in range(count):
        store.save_turn(conversation_id, SavedTurn(f"{writer} {n}", f"{writer} {n}", sources=[source]))
