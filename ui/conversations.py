"""Chat's saved conversations: the list in the sidebar (new chat, open, rename, delete, download), saving each turn
as it ends, and reopening a conversation exactly as it was, or after a reload from the page's address.

The session keeps the open conversation's id (`_CURRENT`) and its turns (`chat.turns()`); the address carries the
id too (`?conversation=...`), so that a reload, which starts a new session, reopens it. Changes go through widget
callbacks, which run before the page is drawn; a callback leaves one message for the next run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import streamlit as st

from rag.errors import ConversationsError, RagError, UnreadableConversations
from rag.history.conversation_export import to_json, to_markdown
from rag.history.conversations import ConversationStore, SavedTurn, SourceState, source_states
from rag.results import Answer
from rag.retrieval.store import Store

from . import notices
from .chat import Turn, turns
from .text import escape

_CURRENT = "chat_conversation"
_NOTICE = "conversations_notice"
_PARAM = "conversation"
SHOWN = 30  # conversations listed in the sidebar; the CLI lists them all


# -- between the saved turns and the page's


def to_turn(saved: SavedTurn) -> Turn:
    """A saved turn as the Chat page keeps and draws it."""
    return Turn(question=saved.question, standalone_question=saved.standalone_question if saved.rewritten else None,
                reranker=saved.reranker, rerank_notice=saved.rerank_notice, hybrid=saved.hybrid,
                sources=list(saved.sources), text=saved.answer,
                outcome=saved.outcome, error=saved.error, fix=saved.fix, cut_off=saved.cut_off,
                evidence=dict(saved.evidence), sentences=list(saved.sentences))


def to_saved(turn: Turn, answer: Answer | None) -> SavedTurn:
    """What to save of a turn that has ended: the Answer's ranking and timings, and what the page showed of it
    (the text so far, the outcome, the error), which is what a stopped or failed turn ends with."""
    saved = SavedTurn.from_answer(answer) if answer is not None else SavedTurn(turn.question, turn.question)
    saved.answer, saved.outcome, saved.cut_off = turn.text, turn.outcome, turn.cut_off
    saved.error, saved.fix = turn.error, turn.fix
    return saved


def saver(path: Path):
    """The Chat page's `save` for `chat.answer_turn`: append the turn to the open conversation (a new one for the
    first turn of a new chat). A turn refused for lack of documents is not kept; a failure to save is noted on the
    turn, which stays on the page."""

    def save(turn: Turn, answer: Answer | None) -> None:
        if turn.no_documents:
            return
        try:
            current = ConversationStore(path).save_turn(st.session_state.get(_CURRENT), to_saved(turn, answer))
        except ConversationsError as exc:
            turn.not_saved = str(exc)  # the message, and the fix in brackets
            return
        st.session_state[_CURRENT] = current
        st.query_params[_PARAM] = current

    return save


def states(store: Store) -> dict[str, SourceState]:
    """replaced/deleted/current of every source on the page, against the store now (empty if it cannot tell)."""
    shown = [SavedTurn(t.question, t.question, sources=t.sources) for t in turns()]
    try:
        return source_states(store, shown)
    except RagError:
        return {}


# -- opening, from the list or from the address


def reopen(path: Path) -> None:
    """Open the conversation the address names, in a session that has none open (after a reload); and keep the
    address naming the open one (switching pages drops it)."""
    current = st.session_state.get(_CURRENT)
    wanted = st.query_params.get(_PARAM)
    if current:
        if wanted != current:
            st.query_params[_PARAM] = current
    elif wanted and not turns():
        _open(path, wanted, quiet=True)


def _open(path: Path, conversation_id: str, quiet: bool = False) -> None:
    try:
        saved = ConversationStore(path).turns(conversation_id)
    except ConversationsError as exc:
        if not quiet:
            _leave("error", exc.message)
        return
    if not saved:  # deleted meanwhile (a conversation always has a turn)
        st.query_params.pop(_PARAM, None)
        if not quiet:
            _leave("error", "That conversation has been deleted.")
        return
    st.session_state["chat_turns"] = [to_turn(t) for t in saved]
    st.session_state[_CURRENT] = conversation_id
    st.query_params[_PARAM] = conversation_id


def _new_chat() -> None:
    st.session_state["chat_turns"] = []
    st.session_state[_CURRENT] = None
    st.query_params.pop(_PARAM, None)


def _rename(path: Path, conversation_id: str) -> None:
    try:
        title = ConversationStore(path).rename(conversation_id, st.session_state.get(_title_key(conversation_id), ""))
    except ConversationsError as exc:
        _leave("error", exc.message)
        return
    _leave("success", f"Renamed to “{title}”.")


def _delete(path: Path, conversation_id: str) -> None:
    try:
        ConversationStore(path).delete(conversation_id)
    except ConversationsError as exc:
        _leave("error", exc.message)
        return
    if st.session_state.get(_CURRENT) == conversation_id:
        _new_chat()
    _leave("success", "Deleted the conversation.")


def _move_aside(path: Path) -> None:
    try:
        moved = ConversationStore(path).move_aside()
    except ConversationsError as exc:
        _leave("error", str(exc))
        return
    _new_chat()
    _leave("success", f"Moved the unreadable file to {moved}. Starting with no saved conversations.")


def _leave(kind: str, text: str) -> None:
    st.session_state[_NOTICE] = (kind, text)


def _title_key(conversation_id: str) -> str:
    return f"conversation-title-{conversation_id}"


# -- the sidebar


def sidebar(path: Path, shown_states: Mapping[str, SourceState]) -> None:
    """New chat; the saved conversations, newest first, the open one highlighted; for the open one, rename,
    download (Markdown, JSON) and delete. An unreadable file is a message and an offer to move it aside."""
    st.subheader("Conversations")
    kind, text = st.session_state.pop(_NOTICE, (None, None))
    if kind == "error":
        st.error(escape(text), icon=":material/error:")
    elif kind:
        st.success(escape(text), icon=":material/check_circle:")
    store = ConversationStore(path)
    try:
        listed = store.list()
    except UnreadableConversations as exc:
        notices.problem(exc.message, exc.fix)
        st.button("Move it aside", icon=":material/restart_alt:", on_click=_move_aside, args=(path,),
                  help="Renames it to <name>.corrupt-<date-time> in the same folder; nothing is deleted.")
        return
    except ConversationsError as exc:
        notices.problem(exc.message, exc.fix)
        return
    st.button("New chat", icon=":material/add_comment:", on_click=_new_chat, key="conversation-new",
              disabled=not turns() and not st.session_state.get(_CURRENT), width="stretch")
    current = st.session_state.get(_CURRENT)
    if not listed:
        st.caption("Conversations are saved here as you ask, on this machine only.")
    for conversation in listed[:SHOWN]:
        st.button(escape(conversation.title, keep_lines=False), key=f"conversation-open-{conversation.id}",
                  on_click=_open, args=(path, conversation.id), width="stretch",
                  type="primary" if conversation.id == current else "secondary",
                  help=f"{conversation.turns} question{'s' if conversation.turns != 1 else ''}, last "
                       f"{conversation.updated_at[:16].replace('T', ' ')} UTC")
    if len(listed) > SHOWN:
        st.caption(f"and {len(listed) - SHOWN} older ones (`python -m rag conversations list`)")
    chosen = next((c for c in listed if c.id == current), None)
    if chosen is None:
        return
    with st.expander("This conversation", icon=":material/tune:"):
        st.text_input("Title", value=chosen.title, key=_title_key(chosen.id), max_chars=120)
        st.button("Rename", icon=":material/edit:", on_click=_rename, args=(path, chosen.id), key="conversation-rename")
        try:
            saved = store.turns(chosen.id)
        except ConversationsError as exc:
            notices.problem(exc.message, exc.fix)
            return
        stem = f"conversation-{chosen.id[:8]}"
        st.download_button("Download as Markdown", to_markdown(chosen, saved, shown_states).encode(),
                           file_name=f"{stem}.md", mime="text/markdown", icon=":material/download:",
                           on_click="ignore", key="conversation-markdown")
        st.download_button("Download as JSON", to_json(chosen, saved, shown_states).encode(),
                           file_name=f"{stem}.json", mime="application/json", icon=":material/download:",
                           on_click="ignore", key="conversation-json")
        st.button("Delete this conversation", icon=":material/delete:", on_click=_delete, args=(path, chosen.id),
                  key="conversation-delete")
