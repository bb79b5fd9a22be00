"""The app in a real Chromium: `streamlit run app.py` as a subprocess on a temporary store, the stand-in LLM and the
shared cross-encoder; upload, ask, see the cited sources, switch reranking off, compare; judge questions on the
Evaluate page; see a question the documents do not answer declined.

Screenshots of the four pages and of the declined question go to the test's temporary folder; with
UPDATE_SCREENSHOTS=1 also to docs/screenshots/ (chat.png, chat-declined.png, documents.png, compare.png,
compare-declined.png, evaluate.png).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_standin.testing import free_port
from tests.conftest import DATA, REPO, RERANKER, cli_env, make_settings
from ui.text import model_label

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SAMPLES = ["retrieval-and-reranking.md", "evaluating-rag.pdf", "glossary.html"]
# The stand-in's SmolLM2-135M rarely cites; the app then attributes its sentence to the source that supports it.
QUESTION = "What does a cross-encoder read?"
# Streamlit's scrolling main area (a page with a chat input has another one).
MAIN = "document.querySelector('[data-testid=stMain], [data-testid=stAppScrollToBottomContainer]')"
# The height of everything on the page: the end of the main block, plus the chat input's bar if there is one.
SCROLL_HEIGHT = (f"{MAIN}.scrollTop"
                 " + document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect().bottom"
                 " + (document.querySelector('[data-testid=stBottom]')?.offsetHeight ?? 0)")
AT_BOTTOM = f"(m => m.scrollTop + m.clientHeight >= m.scrollHeight - 2)({MAIN})"
WAIT_MS = 240_000  # the first question loads the cross-encoder, and the LLM shares 2 cores with everything else


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, ollama_url) -> Iterator[str]:
    """The app served by `streamlit run` on a free loopback port, with a fresh store."""
    folder = tmp_path_factory.mktemp("browser")
    env = cli_env(make_settings(folder, ollama_url), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    port = free_port()
    log = open(folder / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true", "--server.address=127.0.0.1",
         f"--server.port={port}", "--browser.gatherUsageStats=false",
         "--server.fileWatcherType=none"],  # the app does not reload itself while the test drives it
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    _LOGS[url] = folder / "streamlit.log"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {folder / 'streamlit.log'}") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_LOGS: dict[str, Path] = {}


def server_log(url: str) -> str:
    """What the app server started by `app_url` has printed so far."""
    return _LOGS[url].read_text(errors="replace")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/run-tests.sh does it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def screenshot(tmp_path):
    targets = [tmp_path]
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        targets.append(REPO / "docs" / "screenshots")

    def take(page, name: str) -> None:
        """The whole page: Streamlit scrolls inside its main area, so the viewport grows to fit it, then shrinks."""
        size = page.viewport_size
        page.mouse.move(0, 0)  # no hover toolbars in the picture
        height = round(page.evaluate(SCROLL_HEIGHT))
        page.set_viewport_size({"width": size["width"], "height": min(max(height, size["height"]), 3000)})
        page.wait_for_timeout(800)  # let the layout settle at the new size
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"))
        page.set_viewport_size(size)

    return take


def wait_until_idle(page) -> None:
    """Until the app has finished its run (Streamlit shows a status widget while a script runs)."""
    page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


OFF_TOPIC = "What is the capital of Australia?"
DECLINES = re.compile("do not seem to cover this question|do not support this answer|do not answer this")


def test_upload_ask_see_cited_sources_switch_reranking_off_and_compare(app_url, browser, screenshot):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    expect.set_options(timeout=WAIT_MS)
    elsewhere: list[str] = []  # a private, local app: the page asks nothing of any other host
    page.on("request", lambda r: elsewhere.append(r.url) if r.url.startswith("http") and
            not r.url.startswith(app_url) else None)

    # Documents, opened by its URL: the first run of a fresh server starts on this page.
    page.goto(f"{app_url}/documents")
    expect(page.get_by_role("heading", name="Documents")).to_be_visible()
    expect(page.get_by_text("No documents yet.")).to_be_visible()
    wait_until_idle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files([str(DATA / n) for n in SAMPLES])
    for name in SAMPLES:
        expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible()
    wait_until_idle(page)
    page.get_by_role("button", name="Add to library").click()
    for name in SAMPLES:
        expect(page.get_by_text(f"added {name}")).to_be_visible()
    table = page.get_by_test_id("stDataFrame")
    expect(table).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text("3 documents")).to_be_visible()
    wait_until_idle(page)
    screenshot(page, "documents")

    # Chat: the answer streams in with citations, the model's [n] or the app's ⟨n⟩ where the model left one out;
    # each links to its source below, whose card shows the sentence that best answers the question, highlighted.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
    page.get_by_test_id("stChatInputTextArea").fill(QUESTION)
    page.keyboard.press("Enter")
    answer = page.get_by_test_id("stChatMessage").nth(1)
    expect(answer.locator("[id='turn0-source-1']")).to_be_attached()
    expect(answer.get_by_text(f"cross-encoder {model_label(RERANKER)}").first).to_be_visible()
    expect(answer.locator("mark")).to_have_count(3)
    expect(answer.get_by_text("Best evidence of all sources")).to_have_count(1)
    citation = answer.locator("a[href^='#turn0-source-']").first
    expect(citation).to_be_visible()
    number = citation.get_attribute("href").rsplit("-", 1)[1]
    expect(citation).to_have_text(re.compile(rf"^(\[{number}\]|⟨{number}⟩)$"))
    expect(answer.get_by_text(re.compile(r"^\[n\] cited by the model"))).to_be_visible()  # the legend
    source = answer.get_by_text(re.compile(rf"^\[{number}\] "))
    expect(source).to_be_visible()
    wait_until_idle(page)
    screenshot(page, "chat")
    page.set_viewport_size({"width": 1400, "height": 420})  # small enough that the cited source is out of view
    page.wait_for_function(AT_BOTTOM, timeout=WAIT_MS)  # the chat keeps itself scrolled to its end
    expect(source).not_to_be_in_viewport()
    # Having landed, the chat's stick-to-bottom scroll stays engaged for a moment after the resize, and takes back
    # a jump to an anchor made then (seen at 0 ms, not at 600 ms).
    page.wait_for_timeout(1000)
    citation.click()
    expect(source).to_be_in_viewport()
    page.set_viewport_size({"width": 1400, "height": 1000})
    answer.get_by_text("Text of the chunk").first.click()
    expect(answer.get_by_test_id("stText").first).to_be_visible()

    # A question the documents do not answer is declined, as the gate's "not covered" or as an answer that no
    # source supports (whichever stops it, the user reads that the documents do not hold the answer).
    page.get_by_test_id("stChatInputTextArea").fill(OFF_TOPIC)
    page.keyboard.press("Enter")
    off_topic = page.get_by_test_id("stChatMessage").nth(3)
    expect(off_topic.get_by_text(DECLINES).first).to_be_visible()
    expect(off_topic.locator("[id='turn1-source-1']")).to_be_attached()
    wait_until_idle(page)
    screenshot(page, "chat-declined")

    # Reranking off: the next answer's sources come in bi-encoder order, without cross-encoder scores.
    page.get_by_text("Rerank with cross-encoder").click()
    page.get_by_test_id("stChatInputTextArea").fill("What port does Ollama use?")
    page.keyboard.press("Enter")
    second = page.get_by_test_id("stChatMessage").nth(5)
    expect(second.locator("[id='turn2-source-3']")).to_be_attached()
    scores = second.get_by_text("not reranked")
    expect(scores).to_have_count(3)
    assert [s.split("(#")[1].split(")")[0] for s in scores.all_inner_texts()] == ["1", "2", "3"]

    # Compare: both orders of one pool, the moves between them, and the chart.
    wait_until_idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Compare").click()
    expect(page.get_by_role("heading", name="Compare rankings")).to_be_visible()
    wait_until_idle(page)
    page.get_by_label("Question").fill("What does a cross-encoder cost per candidate?")
    page.get_by_label("Question").press("Enter")
    expect(page.get_by_role("heading", name="Bi-encoder order")).to_be_visible()
    expect(page.get_by_role("heading", name="Cross-encoder order")).to_be_visible()
    expect(page.get_by_test_id("stDataFrame")).to_have_count(2)
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()
    page.get_by_role("button", name="Generate both answers").click()
    for side in ("bi-encoder", "cross-encoder"):
        expect(page.get_by_text(f"Answer from the {side} top 3")).to_be_visible()
    wait_until_idle(page)
    for side in ("bi-encoder", "cross-encoder"):  # each sent chunk with its evidence sentence highlighted
        expect(page.locator(f"[id^='compare-{side}-source-'] mark")).to_have_count(3)
    screenshot(page, "compare")

    # Compare declines too: each side's answer to a question the documents do not answer says so.
    question = page.get_by_label("Question", exact=True)  # not the chart's marks, whose labels quote chunks
    question.fill(OFF_TOPIC)
    question.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Generate both answers").click()
    for side in ("bi-encoder", "cross-encoder"):
        expect(page.get_by_text(f"Answer from the {side} top 3")).to_be_visible()
    wait_until_idle(page)
    expect(page.get_by_text(DECLINES)).to_have_count(2)
    screenshot(page, "compare-declined")
    assert elsewhere == []


# Two questions about the sample documents: the test cross-encoder lifts the first one's answer from 2nd to 1st, and
# drops the second one's from 1st to 2nd (the screenshot shows both ways; the assertions hold for any model); each
# with a phrase of the chunk that answers it.
JUDGED = [("What is the default cross-encoder trained on?", "trained on MS MARCO"),
          ("What happens when the best candidate scores below the threshold?", "not to cover the question")]
SETTLED = "!document.querySelector('[data-testid=stMain] [data-stale=true]')"


def test_evaluate_judge_questions_see_both_orders_scored_and_use_the_suggested_threshold(app_url, browser,
                                                                                          screenshot):
    import hashlib

    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    expect.set_options(timeout=WAIT_MS)

    def settle() -> None:
        """Until the run has ended and no element of the previous run is left on the page (a click on one of
        those would go to the question shown before)."""
        wait_until_idle(page)
        page.wait_for_function(SETTLED, timeout=WAIT_MS)

    # The sample documents, unless the test above has added them already.
    page.goto(f"{app_url}/documents")
    add_samples = page.get_by_role("button", name="Add the sample documents")
    expect(page.get_by_test_id("stDataFrame").or_(add_samples)).to_be_visible()
    if add_samples.is_visible():
        add_samples.click()
        expect(page.get_by_test_id("stSidebar").get_by_text("3 documents")).to_be_visible()
    settle()

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Evaluate").click()
    expect(page.get_by_role("heading", name="Evaluate retrieval")).to_be_visible()
    settle()
    for question, answer in JUDGED:
        page.get_by_label("New question").fill(question)
        page.get_by_role("button", name="Add question").click()
        key = hashlib.sha256(question.encode()).hexdigest()[:12]
        expect(page.locator(f"[class*='st-key-judge-{key}-']").first).to_be_visible()  # this question's pool
        settle()
        chunk = page.get_by_test_id("stMain").get_by_test_id("stText").filter(has_text=answer).first
        chunk.locator("xpath=ancestor::div[@data-testid='stVerticalBlock'][1]").get_by_test_id("stCheckbox").click()
        page.get_by_role("button", name="Save judgements").click()
        expect(page.get_by_text(re.compile(r"^Saved: 1 relevant, \d+ not relevant\.$"))).to_be_visible()
        settle()

    page.get_by_role("tab", name="Results").click()
    expect(page.get_by_text(re.compile(r"^Reranking helped \d+, hurt \d+, moved both ways \d+ and left \d+ of "
                                       r"2 scored questions unchanged\.$"))).to_be_visible()
    expect(page.get_by_text("Means over 2 scored questions.", exact=False)).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible()
    screenshot(page, "evaluate")

    page.get_by_role("tab", name="Not-covered threshold").click()
    suggested = page.get_by_text(re.compile(r"^Suggested threshold: \d\.\d\d"))
    expect(suggested).to_be_visible()
    value = re.search(r"\d\.\d\d", suggested.inner_text()).group(0)
    page.get_by_role("button", name=f"Use {value} for this session").click()
    expect(page.get_by_text(f"this session uses {value}")).to_be_visible()
    expect(page.get_by_test_id("stSidebar").get_by_text(value, exact=True)).to_be_visible()  # the slider's value
