"""N browser sessions (default 8) at once against one app server, each uploading a document and asking about it.
Prints upload and answer latency and the server's memory, idle and at its peak.

Run: `.venv/bin/python bench/load.py [--sessions 8] [--reranker DIR]`. It starts the stand-in LLM, the app
(`streamlit run`) on a temporary store, and Debian's Chromium; the figures are this machine's, rerun for yours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import DEFAULT_RERANKER  # noqa: E402

SUBJECTS = ["giraffe", "volcano", "violin", "glacier", "bakery", "lighthouse", "orchard", "telescope", "harbour",
            "meadow", "bridge", "library", "canyon", "cathedral", "vineyard", "windmill"]


def memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def wait_idle(page) -> None:
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=600_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--reranker", default=str(DEFAULT_RERANKER))
    args = parser.parse_args()
    from ollama_standin.testing import free_port, start_standin, stop_standin
    from playwright.sync_api import expect, sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="rag-load-"))
    url, llm = start_standin(stderr=subprocess.DEVNULL)
    port = free_port()
    env = {**os.environ, "RAG_CHROMA_PATH": str(folder / "chroma"), "RAG_RERANKER_MODEL": args.reranker,
           "RAG_OLLAMA_URL": url, "RAG_OLLAMA_MODEL": "smollm2:135m", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
                            "--server.address=127.0.0.1", f"--server.port={port}", "--browser.gatherUsageStats=false",
                            "--server.fileWatcherType=none"], cwd=REPO, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            expect.set_options(timeout=600_000)
            pages = [browser.new_page() for _ in range(args.sessions)]
            for page in pages:
                page.goto(f"{base}/documents")
            for page in pages:
                wait_idle(page)
            idle = memory_mb(app.pid)[0]
            upload_start, upload_s = {}, {}
            for i, page in enumerate(pages):
                subject = SUBJECTS[i % len(SUBJECTS)]
                doc = folder / f"session{i}.txt"
                doc.write_text(f"Notes on the {subject}: it is inspected every week by the {subject} team {i}.")
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(doc))
                expect(page.get_by_role("button", name=f"Remove session{i}.txt")).to_be_visible()
                upload_start[i] = time.perf_counter()
                page.get_by_role("button", name="Add to library").click()
            for i, page in enumerate(pages):
                expect(page.get_by_text(f"added session{i}.txt")).to_be_visible()
                upload_s[i] = time.perf_counter() - upload_start[i]
                wait_idle(page)
                page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
            for page in pages:
                expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
                wait_idle(page)
            asked, answer_s, errors = {}, {}, 0
            for i, page in enumerate(pages):
                page.get_by_test_id("stChatInputTextArea").fill(f"How often is the {SUBJECTS[i % 16]} inspected?")
                page.keyboard.press("Enter")
                asked[i] = time.perf_counter()
            # Poll all sessions together so that each answer's time is taken when it completes.
            pending = set(range(args.sessions))
            while pending:
                for i in list(pending):
                    if pages[i].locator("[id='turn0-source-1']").count() and pages[i].evaluate(
                            "!document.querySelector('[data-testid=\"stStatusWidget\"]')"):
                        answer_s[i] = time.perf_counter() - asked[i]
                        errors += pages[i].locator("[data-testid='stAlertContentError']").count()
                        pending.discard(i)
                time.sleep(0.1)
            current, peak = memory_mb(app.pid)
            browser.close()
        ups, ans = sorted(upload_s.values()), sorted(answer_s.values())
        print(f"sessions at once: {args.sessions}; errors shown: {errors}")
        print(f"upload to 'added' (s): p50 {statistics.median(ups):.1f}, max {ups[-1]:.1f}")
        print(f"question to complete answer (s): p50 {statistics.median(ans):.1f}, max {ans[-1]:.1f} "
              "(the stand-in LLM serves one request at a time)")
        print(f"app server memory (MB): idle with {args.sessions} sessions open {idle:.0f}, "
              f"after answering {current:.0f}, peak {peak:.0f}")
    finally:
        app.terminate()
        app.wait()
        stop_standin(llm)


if __name__ == "__main__":
    main()
