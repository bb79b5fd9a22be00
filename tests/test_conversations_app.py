"""Saved conversations in the app, with AppTest: the sidebar lists them, a new session (a reload) reopens one
exactly as it was, a follow-up continues it with its history, rename and delete, the address reopens it, sources
of replaced documents are marked, and an unreadable file is left alone with an offer to move it aside.

Real encoders and Chroma; the LLM is `tests.fakes.ScriptedChat` (the Pipeline's interface) where a test needs its
words fixed, as in tests/test_answer_view.py.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from rag.answers.prompt import REWRITE_PROMPT
from rag.history.conversations import ConversationStore
from tests.conftest import make_settings
from tests.samples import POLICY
from tests.test_answer_view import htmls, script
from tests.test_app import (APP, REFUND, TIMEOUT, ask, last_answer, shown_ranks, source_titles, start, stock,  # noqa: F401
                            stocked, stocked_folder, texts, use_settings)

FOLLOW_UP = "And where do orders ship from?"


@pytest.fixture
def saved_path(monkeypatch, stocked, tmp_path):
    """This test's own conversations file (the stocked store is shared by the module's tests)."""
    path = tmp_path / "conversations.sqlite3"
    monkeypatch.setenv("RAG_CONVERSATIONS_PATH", str(path))
    return path


def listed(at: AppTest) -> list[str]:
    """The conversations in the sidebar, top to bottom."""
    return [b.label for b in at.sidebar.button if b.key and b.key.startswith("conversation-open-")]


def open_button(at: AppTest, title: str):
    return next(b for b in at.sidebar.button if b.key and b.key.startswith("conversation-open-") and b.label == title)


def answer_view(message) -> tuple:
    """What an answer shows: its markdown, captions (scores, searched for), infos, source titles and cards."""
    return texts(message.markdown), texts(message.caption), texts(message.info), source_titles(message), htmls(message)


def test_an_answer_is_saved_listed_and_reopens_exactly_as_it_was_in_a_new_session(monkeypatch, saved_path):
    script(monkeypatch, "A refund takes 14 days [1].")
    at = ask(start(), REFUND)
    assert listed(at) == [REFUND], "listed as soon as it is asked, titled by the question"
    assert open_button(at, REFUND).proto.type == "primary", "the open conversation stands out"
    before = answer_view(last_answer(at))
    (conversation,) = ConversationStore(saved_path).list()

    again = start()  # a new session, as after a reload (without the address: see the test of the address below)
    assert listed(again) == [REFUND] and len(again.chat_message) == 0
    open_button(again, REFUND).click().run()
    assert not again.exception, again.exception
    assert [m.name for m in again.chat_message] == ["user", "assistant"]
    assert texts(again.chat_message[0].text) == [REFUND]
    assert answer_view(last_answer(again)) == before, "answer, citations, sources, scores and evidence alike"
    assert len(source_titles(last_answer(again))) == 3 and shown_ranks(last_answer(again))[0][1] == "1"
    assert again.query_params["conversation"] == conversation.id, "the address names it, for a reload"


def test_a_reopened_answer_still_says_why_it_was_not_reranked(monkeypatch, stocked, saved_path):
    use_settings(monkeypatch, stocked.model_copy(update={"reranker_model": "cross-encoder/not-on-this-machine"}))
    script(monkeypatch, "A refund takes 14 days [1].")
    at = ask(start(), REFUND)
    notice = [w for w in texts(last_answer(at).warning) if w.startswith("Reranking unavailable")]
    assert notice, texts(last_answer(at).warning)

    again = start()
    open_button(again, REFUND).click().run()
    assert not again.exception, again.exception
    assert [w for w in texts(last_answer(again).warning) if w.startswith("Reranking unavailable")] == notice


def test_a_follow_up_in_a_reopened_conversation_is_rewritten_with_its_history(monkeypatch, saved_path):
    script(monkeypatch, "A refund takes 14 days [1].")
    ask(start(), REFUND)
    chat = script(monkeypatch, "Where do orders ship from?", "Orders ship from Oslo [1].")
    at = start()
    open_button(at, REFUND).click().run()
    at = ask(at, FOLLOW_UP)
    rewrite = [m.content for m in chat.sent[0]]
    assert any(REWRITE_PROMPT in m for m in rewrite), "the first call is the rewrite"
    assert any(REFUND in m and "14 days" in m for m in rewrite), "with the reopened conversation as its history"
    assert "Searched for: Where do orders ship from?" in texts(last_answer(at).caption)
    assert any("Oslo" in t for t in texts(last_answer(at).text)), "the sources of the rewritten question"
    (conversation,) = ConversationStore(saved_path).list()
    turns = ConversationStore(saved_path).turns(conversation.id)
    assert [(t.question, t.standalone_question) for t in turns] == [
        (REFUND, REFUND), (FOLLOW_UP, "Where do orders ship from?")]
    assert listed(at) == [REFUND], "one conversation, continued"


def test_new_chat_starts_another_conversation_listed_newest_first(monkeypatch, saved_path):
    script(monkeypatch, "A refund takes 14 days [1].", "Orders ship from Oslo [1].")
    at = ask(start(), REFUND)
    at.sidebar.button(key="conversation-new").click().run()
    assert len(at.chat_message) == 0 and "conversation" not in at.query_params
    at = ask(at, "Where do orders ship from?")
    assert listed(at) == ["Where do orders ship from?", REFUND]
    assert [len(ConversationStore(saved_path).turns(c.id)) for c in ConversationStore(saved_path).list()] == [1, 1]


def test_a_conversation_can_be_renamed_downloaded_and_deleted(monkeypatch, saved_path):
    script(monkeypatch, "A refund takes 14 days [1].")
    at = ask(start(), REFUND)
    at.sidebar.text_input(key=next(t.key for t in at.sidebar.text_input)).set_value("Refunds").run()
    at.sidebar.button(key="conversation-rename").click().run()
    assert listed(at) == ["Refunds"] and any("Renamed to “Refunds”" in s for s in texts(at.sidebar.success))
    markdown, as_json = (b for b in at.sidebar.get("download_button"))
    assert markdown.proto.label == "Download as Markdown" and as_json.proto.label == "Download as JSON"

    at.sidebar.button(key="conversation-delete").click().run()
    assert not at.exception, at.exception
    assert listed(at) == [] and len(at.chat_message) == 0 and "conversation" not in at.query_params
    assert ConversationStore(saved_path).list() == []


def test_the_address_reopens_the_conversation_after_a_reload(monkeypatch, saved_path):
    script(monkeypatch, "A refund takes 14 days [1].")
    at = ask(start(), REFUND)
    (conversation,) = ConversationStore(saved_path).list()
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["conversation"] = conversation.id
    reloaded.run()
    assert not reloaded.exception, reloaded.exception
    assert texts(reloaded.chat_message[0].text) == [REFUND]
    assert answer_view(last_answer(reloaded)) == answer_view(last_answer(at))
    gone = AppTest.from_file(APP, default_timeout=TIMEOUT)
    gone.query_params["conversation"] = "not-a-conversation"
    gone.run()
    assert not gone.exception and len(gone.chat_message) == 0 and not gone.error


def test_a_reopened_source_whose_document_was_replaced_says_so_and_keeps_the_text_sent(monkeypatch, tmp_path,
                                                                                      ollama_url, bi_encoder):
    settings = make_settings(tmp_path, ollama_url)
    stock(settings, bi_encoder, {"policy.md": POLICY.encode()})
    use_settings(monkeypatch, settings)
    script(monkeypatch, "A refund takes 14 days [1].")
    at = ask(start(), REFUND)
    sent = texts(last_answer(at).text)
    at.switch_page("pages/documents.py").run()
    at.file_uploader[0].set_value([("policy.md", POLICY.replace("14 days", "10 days").encode(), "text/markdown")])
    at.button[0].click().run()
    assert [s.value.split(":")[0] for s in at.success] == ["**replaced** policy.md"]
    at.switch_page("pages/chat.py").run()
    assert not at.exception, at.exception
    notes = [c for c in texts(last_answer(at).caption) if "replaced since" in c]
    assert len(notes) == len(source_titles(last_answer(at))) >= 1
    assert texts(last_answer(at).text) == sent and any("14 days" in t for t in sent), "the text that was sent"


def test_an_unreadable_conversations_file_is_left_alone_until_moved_aside(monkeypatch, saved_path):
    saved_path.write_bytes(b"not a database\n" * 100)
    script(monkeypatch, "A refund takes 14 days [1].")
    at = start()
    assert any("damaged" in e for e in texts(at.sidebar.error))
    at = ask(at, REFUND)
    assert any("14 days" in t for t in texts(last_answer(at).markdown)), "chat still answers"
    assert any(c.startswith(":orange[:material/warning:] Not saved:") for c in texts(last_answer(at).caption))
    assert saved_path.read_bytes() == b"not a database\n" * 100
    next(b for b in at.sidebar.button if b.label == "Move it aside").click().run()
    assert any("Moved the unreadable file" in s for s in texts(at.sidebar.success))
    (moved,) = saved_path.parent.glob("conversations.sqlite3.corrupt-*")
    assert moved.read_bytes() == b"not a database\n" * 100
    at = ask(at, "Where do orders ship from?")
    assert len(ConversationStore(saved_path).list()) == 1
