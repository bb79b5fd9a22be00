"""One session saving turns, for the test of several sessions writing at once. A module of its own, importing only
the conversation store, so that a process running it starts in a second rather than importing the models' libraries.

As a process: `python -m tests.conversation_writer PATH CONVERSATION WRITER COUNT GATE` says it is ready by writing
GATE.WRITER, waits until GATE exists, then saves its turns.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rag.history.conversations import ConversationStore, SavedTurn
from rag.results import Source


def write_turns(path: str, conversation_id: str, writer: str, count: int, start) -> None:
    """Wait for the other sessions (`start.wait()`), then save `count` turns one after another, each a transaction."""
    store = ConversationStore(Path(path))
    start.wait()
    source = Source(chunk_id="c1", file="a.md", page=1, start_index=0, text="text", bi_rank=1, bi_score=0.5,
                    ce_rank=1, ce_score=0.9, number=1)
    for n in range(count):
        store.save_turn(conversation_id, SavedTurn(f"{writer} {n}", f"{writer} {n}", sources=[source]))


class FileGate:
    """A start line across processes: each says it is ready with a file of its own, then waits for the gate file."""

    def __init__(self, gate: Path, writer: str) -> None:
        self.gate, self.ready = gate, gate.with_name(f"{gate.name}.{writer}")

    def wait(self) -> None:
        self.ready.touch()
        while not self.gate.exists():
            time.sleep(0.01)


if __name__ == "__main__":
    path, conversation_id, writer, count, gate = sys.argv[1:6]
    write_turns(path, conversation_id, writer, int(count), FileGate(Path(gate), writer))
