"""What saving conversations costs: one turn saved (three 1,000-character sources, one transaction, WAL), a
conversation of N turns read back, the list; and the same saves from several processes at once.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/conversations.py [--turns 200] [--writers 4]` (or
`scripts/run-bench.sh conversations`). It writes to a temporary file; the figures are this machine's disk.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rag.history.conversations import ConversationStore, SavedTurn  # noqa: E402
from rag.results import Source  # noqa: E402

SOURCES = [Source(f"c{i}", "doc.md", i, 0, "x" * 1000, i, 0.5, i, 0.9, i) for i in (1, 2, 3)]


def _turn(n: int) -> SavedTurn:
    return SavedTurn(f"question {n}", f"question {n}", answer="a" * 500, outcome="answered", sources=SOURCES)


def _writer(path: str, conversation_id: str, turns: int, start) -> None:
    store = ConversationStore(Path(path))
    start.wait()
    for n in range(turns):
        store.save_turn(conversation_id, _turn(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-conversations-"))
    store = ConversationStore(folder / "one.sqlite3")
    conversation_id, times = None, []
    for n in range(args.turns):
        start = time.perf_counter()
        conversation_id = store.save_turn(conversation_id, _turn(n))
        times.append((time.perf_counter() - start) * 1000)
    q = statistics.quantiles(times, n=20)
    print(f"save one turn (ms): p50 {statistics.median(times):.1f}, p95 {q[18]:.1f}")
    start = time.perf_counter()
    store.turns(conversation_id)
    print(f"read a conversation of {args.turns} turns (ms): {(time.perf_counter() - start) * 1000:.1f}")
    start = time.perf_counter()
    store.list()
    print(f"list conversations (ms): {(time.perf_counter() - start) * 1000:.1f}")

    shared = ConversationStore(folder / "shared.sqlite3")
    conversation_id = shared.save_turn(None, _turn(0))
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(args.writers + 1)
    workers = [context.Process(target=_writer, args=(str(shared.path), conversation_id, args.turns, barrier))
               for _ in range(args.writers)]
    for w in workers:
        w.start()
    barrier.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    saved = len(shared.turns(conversation_id)) - 1
    print(f"{args.writers} processes at once: {saved} of {args.writers * args.turns} turns saved in {seconds:.2f} s "
          f"({saved / seconds:.0f} turns/s)")


if __name__ == "__main__":
    main()
