"""How long a `python -m rag` command takes from start to exit, in fresh processes, as a user runs them: `docs`
(lists records, loads no encoder) and `retrieve` (loads both encoders, ranks 20 candidates and reranks them). Each
`retrieve` runs twice per round, alternating which goes first:

- from the record: the encoders run their copies from the record beside them (rag/encoders/copy_record.py), without
torch;
- through the libraries: the record is removed first, so the encoders load through sentence-transformers (which
  writes the record again).

The store holds the sample documents of data/. The copies are those of the configured bi-encoder and the test
cross-encoder, in a temporary copy of the quantized cache (so the user's own is not touched).

Run: `scripts/run-bench.sh startup [--rounds 5] [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER, cpu_description  # noqa: E402
from rag.encoders.copy_record import RECORD  # noqa: E402
from rag.settings import Settings  # noqa: E402

QUESTION = "What does a cross-encoder read?"


def run(args: list[str], env: dict[str, str]) -> float:
    """Seconds from start to exit of `python -m rag ARGS`; fails loudly if the command does."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rag", *args], env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"python -m rag {' '.join(args)} failed: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="rag-startup-") as scratch:
        scratch = Path(scratch)
        cache = scratch / "quantized"
        if Path(settings.quantized_cache).expanduser().is_dir():
            shutil.copytree(Path(settings.quantized_cache).expanduser(), cache)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        env.update(RAG_CHROMA_PATH=str(scratch / "chroma"), RAG_KEYWORD_INDEX_DIR=str(scratch / "keywords"),
                   RAG_JUDGEMENTS_PATH=str(scratch / "judgements.json"), RAG_QUANTIZED_CACHE=str(cache),
                   RAG_RERANKER_MODEL=str(DEFAULT_RERANKER), PYTHONPATH=str(REPO))
        run(["ingest", str(REPO / "data")], env)  # also builds the copies if the cache had none, and records them
        timings: dict[str, list[float]] = {"docs": [], "retrieve, from the record": [],
                                           "retrieve, through the libraries": []}
        for round_ in range(args.rounds):
            timings["docs"].append(run(["docs"], env))
            order = ["retrieve, from the record", "retrieve, through the libraries"]
            for name in (order if round_ % 2 == 0 else order[::-1]):
                if name.endswith("libraries"):
                    for record in cache.glob(f"*/{RECORD}"):
                        record.unlink()
                timings[name].append(run(["retrieve", QUESTION], env))
    report = {"cpu": cpu_description(), "rounds": args.rounds,
              "median_s": {name: round(statistics.median(ts), 2) for name, ts in timings.items()},
              "runs_s": {name: [round(t, 2) for t in ts] for name, ts in timings.items()}}
    print(report["cpu"])
    for name, seconds in report["median_s"].items():
        print(f"{name:<34} {seconds:6.2f} s median of {args.rounds} ({', '.join(map(str, report['runs_s'][name]))})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
