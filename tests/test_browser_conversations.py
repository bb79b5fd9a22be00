"""Saved conversations in a real Chromium, against `streamlit run app.py` (as tests/test_browser.py serves it, with
its own store): ask, reload, the conversation is in the sidebar and opens with its sources; a follow-up in the
reopened conversation is rewritten with its history; the Markdown download names every source; delete removes it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_browser import QUESTION, WAIT_MS, app_url, browser, wait_until_idle  # noqa: F401

pytestmark = pytest.mark.browser

FOLLOW_UP = "And what does it cost per candidate?"


def card_titles(message) -> list[str]:
    """The titles of the source cards under an answer, '[n] file, p. x', as shown."""
    return [t.strip() for t in message.get_by_test_id("stMarkdownContainer").all_inner_texts()
            if re.match(r"^\[\d+\] ", t.strip())]


def test_ask_reload_reopen_follow_up_export_and_delete_a_conversation(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    expect.set_options(timeout=WAIT_MS)
    sidebar = page.get_by_test_id("stSidebar")

    page.goto(f"{app_url}/documents")
    add_samples = page.get_by_role("button", name="Add the sample documents")
    expect(page.get_by_test_id("stDataFrame").or_(add_samples)).to_be_visible()
    if add_samples.is_visible():
        add_samples.click()
        expect(sidebar.get_by_text("3 documents")).to_be_visible()
    wait_until_idle(page)

    # Ask: the conversation is saved as the answer ends, listed under its question, named in the address.
    sidebar.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
    page.get_by_test_id("stChatInputTextArea").fill(QUESTION)
    page.keyboard.press("Enter")
    answer = page.get_by_test_id("stChatMessage").nth(1)
    expect(answer.locator("[id='turn0-source-3']")).to_be_attached()
    wait_until_idle(page)
    expect(sidebar.get_by_role("button", name=QUESTION)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/\?conversation=[0-9a-f]{32}$"))
    sources = card_titles(answer)
    scores = answer.get_by_text(re.compile(r"^bi-encoder [\d.]+ \(#\d+\) · cross-encoder ")).all_inner_texts()
    assert len(sources) == 3 and len(scores) == 3

    # Reload: a new session; the address reopens the conversation, and the sidebar lists it.
    page.reload()
    answer = page.get_by_test_id("stChatMessage").nth(1)
    expect(answer.locator("[id='turn0-source-3']")).to_be_attached()
    expect(sidebar.get_by_role("button", name=QUESTION)).to_be_visible()
    wait_until_idle(page)
    assert card_titles(answer) == sources

    # A fresh tab on the plain address starts empty; the conversation opens from the sidebar, as it was.
    fresh = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    fresh.goto(f"{app_url}/")  # Chat, the default page
    fresh_sidebar = fresh.get_by_test_id("stSidebar")
    expect(fresh_sidebar.get_by_role("button", name=QUESTION)).to_be_visible()
    wait_until_idle(fresh)
    expect(fresh.get_by_test_id("stChatMessage")).to_have_count(0)
    fresh_sidebar.get_by_role("button", name=QUESTION).click()
    reopened = fresh.get_by_test_id("stChatMessage").nth(1)
    expect(reopened.locator("[id='turn0-source-3']")).to_be_attached()
    wait_until_idle(fresh)
    assert card_titles(reopened) == sources
    assert reopened.get_by_text(re.compile(r"^bi-encoder [\d.]+ \(#\d+\) · cross-encoder ")).all_inner_texts() \
        == scores, "both rankers' scores and ranks as they were"

    # A follow-up continues it: the rewrite reads the reopened history, and the turn joins the same conversation.
    fresh.get_by_test_id("stChatInputTextArea").fill(FOLLOW_UP)
    fresh.keyboard.press("Enter")
    second = fresh.get_by_test_id("stChatMessage").nth(3)
    expect(second.locator("[id='turn1-source-3']")).to_be_attached()
    wait_until_idle(fresh)
    searched = second.get_by_text(re.compile(r"^Searched for: ")).inner_text()
    assert searched != f"Searched for: {FOLLOW_UP}", "rewritten into a standalone question"
    expect(fresh_sidebar.get_by_role("button")).to_contain_text([QUESTION])
    follow_sources = card_titles(second)

    # Export: the Markdown names every source of both answers, numbered, with file and page, and holds its text.
    fresh_sidebar.get_by_text("This conversation", exact=True).click()
    # The sidebar's download is drawn at the end of the run, and Streamlit shows the running widget that
    # wait_until_idle watches only after a run's first 500 ms: on loaded cores (CI) a first click once got the file
    # without the last turn. Later clicks get the finished run's file; a turn never saved fails every attempt.
    for _ in range(10):
        with fresh.expect_download() as download:
            fresh_sidebar.get_by_role("button", name="Download as Markdown").click()
        saved = Path(download.value.path()).read_text(encoding="utf-8")
        sections = saved.split("\n## ")[1:]
        if len(sections) >= 2:
            break
        fresh.wait_for_timeout(1_000)
        wait_until_idle(fresh)
    assert download.value.suggested_filename.endswith(".md")
    assert [s.splitlines()[0] for s in sections] == [f"1. {QUESTION}", f"2. {FOLLOW_UP}"]
    for section, titles in zip(sections, (sources, follow_sources)):
        for title in titles:
            number, location = re.match(r"^\[(\d+)\] (.*)$", title).groups()
            assert f"**\\[{number}\\] {location}**" in section, title
        assert section.count("```text") >= len(titles), "each with the chunk's text"

    # Delete: gone from the list and from the page, in this tab and, after a reload, in the other.
    fresh_sidebar.get_by_role("button", name="Delete this conversation").click()
    expect(fresh_sidebar.get_by_text("Deleted the conversation.")).to_be_visible()
    expect(fresh_sidebar.get_by_role("button", name=QUESTION)).to_have_count(0)
    expect(fresh.get_by_test_id("stChatMessage")).to_have_count(0)
    page.goto(f"{app_url}/")
    expect(page.get_by_text("Conversations are saved here as you ask")).to_be_visible()
    expect(sidebar.get_by_role("button", name=QUESTION)).to_have_count(0)
