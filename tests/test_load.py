"""Eight browser sessions at once against one app server, each uploading a document and asking about it: every
upload recorded once, every answer complete, no errors, and the shared models loaded once for all of them."""

import re

import pytest

from tests.test_browser import WAIT_MS, app_url, browser, server_log, wait_until_idle  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser
SESSIONS = 8
# One distinct subject per session, so that each question has one clearly right document.
SUBJECTS = [("giraffe", "Monday"), ("volcano", "Tuesday"), ("violin", "Wednesday"), ("glacier", "Thursday"),
            ("bakery", "Friday"), ("lighthouse", "Saturday"), ("orchard", "Sunday"), ("telescope", "holidays")]


def test_eight_sessions_upload_and_ask_at_once_and_share_one_load_of_each_model(app_url, browser,  # noqa: F811
                                                                                tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    pages = [browser.new_page(viewport={"width": 1200, "height": 900}) for _ in range(SESSIONS)]
    for i, page in enumerate(pages):
        subject, day = SUBJECTS[i]
        (tmp_path / f"session{i}.txt").write_text(f"Notes on the {subject}: the {subject} is inspected every {day} "
                                                  f"by the {subject} team, who log each inspection.")
        page.goto(f"{app_url}/documents")
    for i, page in enumerate(pages):  # all eight uploads start before any is waited for
        expect(page.get_by_role("button", name="Add to library")).to_be_visible()
        wait_until_idle(page)
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(tmp_path / f"session{i}.txt"))
        expect(page.get_by_role("button", name=f"Remove session{i}.txt")).to_be_visible()
        page.get_by_role("button", name="Add to library").click()
    for i, page in enumerate(pages):
        expect(page.get_by_text(f"added session{i}.txt")).to_be_visible()
        wait_until_idle(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Chat").click()
    for i, page in enumerate(pages):  # all eight questions are in before any answer is waited for
        expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
        wait_until_idle(page)
        page.get_by_test_id("stChatInputTextArea").fill(f"When is the {SUBJECTS[i][0]} inspected?")
        page.keyboard.press("Enter")
    for i, page in enumerate(pages):
        answer = page.get_by_test_id("stChatMessage").nth(1)
        expect(answer.locator("[id='turn0-source-1']")).to_be_attached()
        wait_until_idle(page)
        text = answer.inner_text()
        assert f"session{i}.txt" in text and "cut off" not in text, (i, text)
        assert page.locator("[data-testid='stAlertContentError']").count() == 0, i
        assert page.locator("[data-testid='stException']").count() == 0, i
    # Every upload is in the library exactly once.
    pages[0].get_by_test_id("stSidebarNav").get_by_role("link", name="Documents").click()
    expect(pages[0].get_by_test_id("stSidebar").get_by_text(f"{SESSIONS} documents")).to_be_visible()
    for page in pages:
        page.close()
    # The encoders are cached for the process: eight sessions, one load of each (the server's log says each load).
    log = server_log(app_url)
    assert len(re.findall(r"app: loading the bi-encoder", log)) == 1, log
    assert len(re.findall(r"app: loading the cross-encoder", log)) == 1, log
