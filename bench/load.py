"""Eight (or N) sessions of the app at once, each uploading a document and asking about it; prints latency and
memory. Run: `.venv/bin/python bench/load.py [--sessions 8] [--reranker DIR]` (starts the stand-in LLM itself
unless RAG_OLLAMA_URL answers). The figures are this machine's: rerun to get yours."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_session(i: int, out: dict) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("pages/documents.py").run()
    at.file_uploader[0].set_value([(f"session{i}.txt", f"The code word of session {i} is X-{i * 111}.".encode(),
                                    "text/plain")])
    start = time.perf_counter()
    at.button[0].click().run()
    upload = time.perf_counter() - start
    at.switch_page("pages/chat.py").run()
    start = time.perf_counter()
    at.chat_input[0].set_value(f"What is the code word of session {i}?").run()
    out[i] = {"upload_s": upload, "answer_s": time.perf_counter() - start, "errors": len(at.error) + len(at.exception)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--reranker", default=str(REPO.parent / "shared/models/reranker-minilm-l6-sci"))
    args = parser.parse_args()
    from ollama_standin.testing import start_standin, stop_standin

    server = None
    if not os.environ.get("RAG_OLLAMA_URL"):
        url, server = start_standin(stderr=open(os.devnull, "wb"))
        os.environ.update(RAG_OLLAMA_URL=url, RAG_OLLAMA_MODEL="smollm2:135m")
    folder = tempfile.mkdtemp(prefix="rag-load-")
    os.environ.update(RAG_CHROMA_PATH=f"{folder}/chroma", RAG_RERANKER_MODEL=args.reranker, RAG_MIN_RERANK_SCORE="0")
    os.chdir(folder)
    try:
        before = rss_mb()
        results: dict[int, dict] = {}
        threads = [threading.Thread(target=run_session, args=(i, results)) for i in range(args.sessions)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        answers = sorted(r["answer_s"] for r in results.values())
        uploads = sorted(r["upload_s"] for r in results.values())
        print(f"sessions: {args.sessions}, all finished: {len(results) == args.sessions}, "
              f"errors: {sum(r['errors'] for r in results.values())}, wall time: {wall:.1f} s")
        print(f"upload+ingest s: p50 {statistics.median(uploads):.1f}, max {uploads[-1]:.1f}")
        print(f"answer s (question to full answer, LLM requests served one at a time): "
              f"p50 {statistics.median(answers):.1f}, max {answers[-1]:.1f}")
        print(f"app process memory: before {before:.0f} MB (interpreter and libraries), peak {peak:.0f} MB")
    finally:
        if server:
            stop_standin(server)


if __name__ == "__main__":
    main()
