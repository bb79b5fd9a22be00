"""Saved conversations: the SQLite store (round trip, writers at once, files it must not touch), sources whose
document changed since, the exports, and `python -m rag conversations`.

The answers come from the real pipeline (real encoders, a real Chroma) with the LLM scripted where a test needs
its words fixed; the CLI runs its `main` in this process (tests/conftest.py, `run_cli`).
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.answers.declines import DECLINED, UNSUPPORTED_ANSWER
from rag.errors import ConversationsError, ModelLoadError, UnreadableConversations
from rag.history.conversation_export import to_dict, to_json, to_markdown
from rag.history.conversations import SCHEMA_VERSION, ConversationStore, SavedTurn, source_states
from rag.pipeline import Pipeline
from rag.results import Source
from tests.conftest import REPO, cli_env, make_settings, run_cli
from tests.conversation_writer import write_turns
from tests.fakes import ScriptedChat
from tests.samples import POLICY

NOTES = ("# Plants\n\nThe office plants are watered on Mondays by the facilities team.\n\n"
         "# Kettles\n\nThe kitchen kettle is descaled every Friday afternoon.\n")
REFUND = "How long does a refund take?"


@pytest.fixture
def conversations(tmp_path) -> ConversationStore:
    return ConversationStore(tmp_path / "conversations.sqlite3")


def scripted(settings, store, cross_encoder, *replies: str) -> Pipeline:
    return Pipeline(settings, store, cross_encoder, chat_model=ScriptedChat(*replies))


def answered(pipeline: Pipeline, question: str, history=()) -> SavedTurn:
    answer = pipeline.ask(question, history)
    answer.consume()
    return SavedTurn.from_answer(answer)


def source(n: int, file: str = "a.md", text: str = "text") -> Source:
    return Source(chunk_id=f"c{n}", file=file, page=n, start_index=0, text=text, bi_rank=n, bi_score=0.5,
                  ce_rank=1, ce_score=0.9, number=n)


# -- the store


def test_a_turn_reads_back_exactly_as_it_was_saved(settings, store, cross_encoder, conversations):
    pipeline = scripted(settings, store, cross_encoder, "A refund takes 14 days [1].")
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    turn = answered(pipeline, REFUND)
    assert turn.sources and turn.evidence and turn.sentences and turn.sent and turn.timings.retrieve_ms is not None
    conversation_id = conversations.save_turn(None, turn)

    (saved,) = conversations.turns(conversation_id)
    assert saved == turn, "every field: sources with both scores and ranks, evidence, attribution, timings"
    assert saved.number == 1 and saved.reranked and saved.reranker == pipeline.reranker_name
    assert len(saved.sources) >= 2 and [s.ce_rank for s in saved.sources] == list(range(1, len(saved.sources) + 1))
    assert saved.citations == [1]
    (listed,) = conversations.list()
    assert (listed.id, listed.title, listed.turns) == (conversation_id, REFUND, 1)


def test_a_turn_answered_without_its_cross_encoder_keeps_why_and_the_export_says_so(settings, store, conversations):
    def unloadable():
        raise ModelLoadError("cannot load cross-encoder cross-encoder/not-here: not in the local cache")

    pipeline = Pipeline(settings, store, unloadable, chat_model=ScriptedChat("A refund takes 14 days [1]."))
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    answer = pipeline.ask(REFUND, fallback=True)
    answer.consume()
    conversation_id = conversations.save_turn(None, SavedTurn.from_answer(answer))
    (saved,) = conversations.turns(conversation_id)
    assert saved.rerank_notice.startswith("reranking unavailable: cannot load cross-encoder cross-encoder/not-here")
    assert not saved.reranked and all(s.ce_rank is None for s in saved.sources)
    markdown = to_markdown(conversations.get(conversation_id), [saved])
    assert "*Not reranked:* reranking unavailable: cannot load cross-encoder cross-encoder/not-here" in markdown


def test_a_file_of_the_first_schema_is_upgraded_once_and_keeps_every_turn(conversations):
    first = conversations.save_turn(None, SavedTurn("q", "q", answer="a", sources=[source(1)]))
    with sqlite3.connect(conversations.path) as con:  # as schema 1 made it: no rerank_notice column
        con.execute("ALTER TABLE turns DROP COLUMN rerank_notice")
        con.execute("PRAGMA user_version = 1")
    (old,) = conversations.turns(first)
    assert (old.question, old.answer, old.sources, old.rerank_notice) == ("q", "a", [source(1)], None)
    with sqlite3.connect(conversations.path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conversations.save_turn(first, SavedTurn("r", "r", rerank_notice="reranking unavailable: no model"))
    assert [t.rerank_notice for t in conversations.turns(first)] == [None, "reranking unavailable: no model"]


def test_a_follow_up_joins_its_conversation_and_the_newest_conversation_is_listed_first(conversations):
    first = conversations.save_turn(None, SavedTurn("Where do orders ship from?", "Where do orders ship from?"))
    second = conversations.save_turn(None, SavedTurn("How long does a refund take?", "How long does a refund take?"))
    assert [c.id for c in conversations.list()] == [second, first]
    conversations.save_turn(first, SavedTurn("And how fast?", "How fast do orders ship from Oslo?"))
    assert [c.id for c in conversations.list()] == [first, second], "a conversation moves up when it goes on"
    turns = conversations.turns(first)
    assert [t.number for t in turns] == [1, 2] and turns[1].rewritten
    assert conversations.rename(first, "  Shipping\n questions ") == "Shipping questions"
    assert conversations.get(first).title == "Shipping questions"
    with pytest.raises(ConversationsError):
        conversations.rename(first, "   ")


def test_delete_removes_a_conversation_with_its_turns_and_sources(conversations):
    kept = conversations.save_turn(None, SavedTurn("kept", "kept", sources=[source(1)]))
    gone = conversations.save_turn(None, SavedTurn("gone", "gone", sources=[source(1), source(2)]))
    assert conversations.delete(gone) and not conversations.delete(gone)
    assert [c.id for c in conversations.list()] == [kept]
    with sqlite3.connect(conversations.path) as con:
        assert con.execute("SELECT COUNT(*) FROM turns").fetchone() == (1,)
        assert con.execute("SELECT COUNT(*) FROM sources").fetchone() == (1,), "no orphaned sources"
    with pytest.raises(ConversationsError, match="was deleted"):
        conversations.save_turn(gone, SavedTurn("late", "late"))
    assert conversations.delete_all() == 1 and conversations.list() == []


def test_reading_makes_no_file_and_the_file_is_ours_in_wal_mode(conversations):
    assert conversations.list() == [] and not conversations.path.exists()
    conversations.save_turn(None, SavedTurn("q", "q"))
    with sqlite3.connect(conversations.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_sessions_writing_one_conversation_at_once_lose_no_turn(conversations, how):
    conversation_id = conversations.save_turn(None, SavedTurn("first", "first"))
    count, writers = 40, ["tab A", "tab B", "cli"]
    if how == "threads":
        start = threading.Barrier(len(writers))
        workers = [threading.Thread(target=write_turns, args=(str(conversations.path), conversation_id, w, count,
                                                               start)) for w in writers]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    else:  # separate processes, as a CLI beside the app's sessions
        gate = conversations.path.with_name("start")
        workers = [subprocess.Popen([sys.executable, "-m", "tests.conversation_writer", str(conversations.path),
                                     conversation_id, w, str(count), str(gate)], cwd=REPO) for w in writers]
        while not all(gate.with_name(f"start.{w}").exists() for w in writers):
            assert all(p.poll() is None for p in workers), "a writer process failed to start"
            time.sleep(0.05)
        gate.touch()
        assert [p.wait(timeout=600) for p in workers] == [0] * len(writers)
    turns = conversations.turns(conversation_id)
    assert [t.number for t in turns] == list(range(1, 2 + count * len(writers))), "numbered once each, no gap"
    questions = {t.question for t in turns}
    assert questions == {"first"} | {f"{w} {n}" for w in writers for n in range(count)}
    for writer in writers:  # each session's turns in the order it saved them
        mine = [t.question for t in turns if t.question.startswith(writer)]
        assert mine == [f"{writer} {n}" for n in range(count)]
    assert all(len(t.sources) == 1 for t in turns[1:])


# -- files it must not touch


def _damage(path: Path) -> bytes:
    """Overwrite the middle of a saved file with garbage (its pages, not the header); return the bytes now."""
    data = bytearray(path.read_bytes())
    assert len(data) >= 3 * 4096
    data[4096:len(data) - 100] = b"\xde\xad\xbe\xef" * ((len(data) - 4196) // 4) + b"\x00" * ((len(data) - 4196) % 4)
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("fault", ["damaged pages", "not a database", "another app's database", "newer schema"])
def test_an_unreadable_file_is_never_written_and_can_be_moved_aside(conversations, fault):
    path = conversations.path
    existing = conversations.save_turn(None, SavedTurn("q", "q", answer="a" * 5000, sources=[source(1, text="t" * 5000)]))
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if fault == "damaged pages":
        _damage(path)
    elif fault == "not a database":
        path.write_bytes(b"these are my notes, not a database\n" * 200)
    elif fault == "another app's database":
        path.unlink()
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE expenses (amount REAL)")
            con.execute("INSERT INTO expenses VALUES (12.5)")
    else:
        with sqlite3.connect(path) as con:
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()

    for attempt in (conversations.list, lambda: conversations.turns(existing),
                    lambda: conversations.save_turn(None, SavedTurn("new", "new")),
                    lambda: conversations.save_turn(existing, SavedTurn("more", "more")),
                    lambda: conversations.delete_all()):
        with pytest.raises(UnreadableConversations) as raised:
            attempt()
        assert raised.value.path == path and raised.value.fix
        assert path.read_bytes() == before, "the file is left exactly as it was"
    if fault == "newer schema":
        assert "newer version" in raised.value.message and "update the app" in raised.value.fix

    moved = conversations.move_aside()
    assert moved.name.startswith("conversations.sqlite3.corrupt-") and moved.read_bytes() == before
    assert not path.exists() and not Path(f"{path}-wal").exists()
    assert conversations.list() == []
    conversations.save_turn(None, SavedTurn("a fresh start", "a fresh start"))
    assert [c.title for c in conversations.list()] == ["a fresh start"]


# -- sources whose document changed since


def test_sources_of_replaced_and_deleted_documents_are_told_apart_and_keep_their_text(settings, store, cross_encoder,
                                                                                      conversations):
    pipeline = scripted(settings, store, cross_encoder)
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    pipeline.library.ingest_bytes("notes.md", NOTES.encode())
    pipeline.library.ingest_bytes("more.md", b"# Kettles\n\nThe red kettle in the shop window is not for sale.\n")
    ranking = pipeline.retrieve("When is the kettle descaled or watered?", candidates=20)
    turn = SavedTurn(ranking.question, ranking.question, sources=ranking.candidates)
    files = {s.file for s in turn.sources}
    assert files == {"policy.md", "notes.md", "more.md"}
    conversation_id = conversations.save_turn(None, turn)
    saved = conversations.turns(conversation_id)
    assert set(source_states(store, saved).values()) == {"current"}

    pipeline.library.ingest_bytes("policy.md", POLICY.replace("14 days", "10 days").encode())  # replaced
    pipeline.library.delete("notes.md")
    states = source_states(store, saved)
    expected = {s.chunk_id: {"policy.md": "replaced", "notes.md": "deleted", "more.md": "current"}[s.file]
                for s in saved[0].sources}
    assert states == expected
    assert [s.text for s in conversations.turns(conversation_id)[0].sources] == [s.text for s in turn.sources]

    markdown = to_markdown(conversations.get(conversation_id), saved, states)
    assert markdown.count("its document has been replaced since") == sum(s.file == "policy.md" for s in saved[0].sources)
    assert markdown.count("its document has been deleted since") == sum(s.file == "notes.md" for s in saved[0].sources)
    exported = to_dict(conversations.get(conversation_id), saved, states)
    assert [s["state"] for s in exported["turns"][0]["sources"]] == [states[s.chunk_id] for s in saved[0].sources]


# -- exports


def test_markdown_export_names_every_source_of_every_answer_with_its_text(settings, store, cross_encoder,
                                                                          conversations):
    pipeline = scripted(settings, store, cross_encoder, "A refund takes 14 days [1].", "Where do orders ship from?",
                        "Orders ship from Oslo within two working days [1].")
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    pipeline.library.ingest_bytes("notes.md", NOTES.encode())
    first = answered(pipeline, REFUND)
    conversation_id = conversations.save_turn(None, first)
    follow_up = answered(pipeline, "And where do they ship from?", [("user", REFUND), ("assistant", first.answer)])
    conversations.save_turn(conversation_id, follow_up)
    conversation, turns = conversations.get(conversation_id), conversations.turns(conversation_id)

    markdown = to_markdown(conversation, turns)
    assert markdown.startswith(f"# {REFUND}\n")
    sections = markdown.split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [f"1. {REFUND}", "2. And where do they ship from?"]
    assert "*Searched for:* Where do orders ship from?" in sections[1]
    for section, turn in zip(sections, turns):
        assert turn.answer.replace("[", "\\[").replace("]", "\\]") in section
        for s in turn.sources:
            assert f"**\\[{s.number}\\] {s.file}**" in section, "each source by number and file"
            assert f"```text\n{s.text.rstrip()}\n```" in section, "with the chunk's text, verbatim"
            assert f"bi-encoder {s.bi_score:.4f} (#{s.bi_rank})" in section
            assert f"{s.ce_score:.4f} (#{s.ce_rank})" in section

    data = json.loads(to_json(conversation, turns))
    assert data["format"] == "rag-conversation" and data["conversation"]["id"] == conversation_id
    assert [t["question"] for t in data["turns"]] == [REFUND, "And where do they ship from?"]
    assert data["turns"][1]["sources"] == [{**s.to_dict(), "state": None} for s in turns[1].sources]


def test_markdown_export_says_which_answers_are_not_from_the_documents(settings, store, cross_encoder, conversations):
    pipeline = scripted(settings, store, cross_encoder, "Penguins often nest in the hot Sahara desert.",
                        "The documents do not say.")
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    unsupported, declined = answered(pipeline, REFUND), answered(pipeline, "Where do orders ship from?")
    assert (unsupported.outcome, declined.outcome) == ("unsupported", "declined")
    conversation_id = conversations.save_turn(None, unsupported)
    conversations.save_turn(conversation_id, declined)
    turns = conversations.turns(conversation_id)
    assert [t.outcome for t in turns] == ["unsupported", "declined"], "the outcome is saved as it was"
    first, second = to_markdown(conversations.get(conversation_id), turns).split("\n## ")[1:]
    assert f"**{UNSUPPORTED_ANSWER}** It wrote:\n\nPenguins often nest in the hot Sahara desert." in first
    assert f"**{DECLINED}** It wrote:\n\nThe documents do not say." in second
    assert "### Sources (sent to the LLM; none supports the answer)" in first
    assert "### Sources (sent to the LLM)\n" in second, "the sources say what they were, as in Chat"


def test_markdown_export_keeps_what_documents_and_the_llm_wrote_as_text(conversations):
    hostile = "See ![x](http://example.invalid/x.png) <img src=x onerror=alert(1)> **bold**\n# heading"
    chunk = "```\n<script>alert(1)</script>\n````"
    conversation_id = conversations.save_turn(None, SavedTurn(hostile, hostile, answer=hostile,
                                                              outcome="answered", sources=[source(1, text=chunk)]))
    markdown = to_markdown(conversations.get(conversation_id), conversations.turns(conversation_id))
    outside_fences = markdown.split("`````text")[0]
    assert not re.search(r"(?<!\\)(!\[|<img|\*\*bold)", outside_fences) and "\n# heading" not in outside_fences
    assert "!\\[x\\](http://example.invalid/x.png) \\<img src=x onerror=alert(1)\\> \\*\\*bold\\*\\*" in markdown
    assert f"`````text\n{chunk}\n`````" in markdown, "a fence longer than any inside the chunk"


# -- the command line


@pytest.fixture
def cli_store(settings, store, cross_encoder, conversations):
    """A store with the policy, and one saved conversation of two answered turns."""
    pipeline = scripted(settings, store, cross_encoder, "A refund takes 14 days [1].", "Orders ship from Oslo [1].")
    pipeline.library.ingest_bytes("policy.md", POLICY.encode())
    conversation_id = conversations.save_turn(None, answered(pipeline, REFUND))
    conversations.save_turn(conversation_id, answered(pipeline, "Where do orders ship from?"))
    store.close()  # the CLI opens the embedded store itself
    return cli_env(settings, RAG_CONVERSATIONS_PATH=str(conversations.path)), conversation_id


def test_cli_lists_shows_exports_and_deletes_conversations(cli_store, conversations, tmp_path):
    env, conversation_id = cli_store
    listed = run_cli("conversations", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[0] == conversation_id[:12] and listed.stdout.rstrip().endswith(REFUND)

    shown = run_cli("conversations", "show", conversation_id[:6], env=env)
    assert shown.returncode == 0, shown.stderr
    turns = conversations.turns(conversation_id)
    for s in (s for t in turns for s in t.sources):
        assert f"**\\[{s.number}\\] {s.file}**" in shown.stdout and s.text.rstrip() in shown.stdout
    assert "replaced since" not in shown.stdout and "deleted since" not in shown.stdout

    out = tmp_path / "exported.json"
    exported = run_cli("conversations", "export", conversation_id, "--format", "json", "-o", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(out.read_text())
    assert {s["state"] for t in data["turns"] for s in t["sources"]} == {"current"}

    deleted = run_cli("delete", "policy.md", env=env)
    assert deleted.returncode == 0, deleted.stderr
    shown = run_cli("conversations", "show", conversation_id, env=env)
    assert shown.stdout.count("its document has been deleted since") == sum(len(t.sources) for t in turns)

    missing = run_cli("conversations", "show", "zzz", env=env)
    assert missing.returncode == 1 and missing.stderr.startswith("error: no saved conversations have an id")
    gone = run_cli("conversations", "delete", conversation_id[:8], env=env)
    assert gone.returncode == 0 and conversations.list() == []


def test_cli_leaves_an_unreadable_file_as_it_is_and_moves_it_aside_when_asked(cli_store, conversations):
    env, _ = cli_store
    path = conversations.path
    path.write_bytes(b"not a database at all\n" * 100)
    for args in (("list",), ("delete", "--all")):
        result = run_cli("conversations", *args, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ") and "move-aside" in result.stderr
        assert path.read_bytes() == b"not a database at all\n" * 100
    moved = run_cli("conversations", "move-aside", env=env)
    assert moved.returncode == 0, moved.stderr
    assert run_cli("conversations", "list", env=env).stdout.startswith("no saved conversations yet")
