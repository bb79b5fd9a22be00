"""`python -m rag conversations list|show|export|delete|move-aside`: the saved chat conversations from the shell.

A conversation is named by its id or any prefix of it that only it has (`list` shows the first 12 characters).
`show` and `export` mark the sources whose document was since replaced or deleted, which opens the document store
(and loads the bi-encoder); `--no-check` leaves that out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import RagError
from .history.conversation_export import to_json, to_markdown
from .history.conversations import ConversationStore, SavedTurn, SourceState, source_states
from .settings import Settings

ID_CHARS = 12


def add_parser(sub) -> None:
    """Add `conversations` and its subcommands to the CLI's subparsers."""
    p = sub.add_parser("conversations", help="list, show, export or delete the saved chat conversations")
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="every saved conversation, the most recent first")
    q.add_argument("--json", action="store_true")
    for name, text in (("show", "print a conversation with its sources (Markdown)"),
                       ("export", "write a conversation as Markdown or JSON")):
        q = actions.add_parser(name, help=text)
        q.add_argument("id", help="the conversation's id, or the start of it")
        q.add_argument("--no-check", action="store_true",
                       help="do not open the document store to mark sources whose document was replaced or deleted")
        if name == "export":
            q.add_argument("--format", choices=["markdown", "json"], default="markdown")
            q.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here instead of to stdout")
    q = actions.add_parser("delete", help="delete a conversation, or all of them")
    target = q.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", help="the conversation's id, or the start of it")
    target.add_argument("--all", action="store_true", help="delete every saved conversation")
    actions.add_parser("move-aside", help="rename an unreadable conversations file, to start with none")


def cmd_conversations(args, settings: Settings) -> int:
    store = ConversationStore(settings.conversations_file)
    if args.action == "list":
        return _list(store, args.json)
    if args.action == "move-aside":
        moved = store.move_aside()
        print(f"moved {settings.conversations_file} to {moved}")
        return 0
    if args.action == "delete":
        if args.all:
            print(f"deleted {store.delete_all()} conversations from {settings.conversations_file}")
            return 0
        found = store.find(args.id)
        store.delete(found.id)
        print(f"deleted {found.id}: {found.title}")
        return 0
    conversation = store.find(args.id)
    turns = store.turns(conversation.id)
    states = {} if args.no_check else _states(settings, turns)
    if args.action == "show" or args.format == "markdown":
        text = to_markdown(conversation, turns, states)
    else:
        text = to_json(conversation, turns, states)
    if args.action == "export" and args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RagError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _list(store: ConversationStore, as_json: bool) -> int:
    conversations = store.list()
    if as_json:
        import json

        print(json.dumps([c.__dict__ for c in conversations], indent=2, ensure_ascii=False))
        return 0
    if not conversations:
        print("no saved conversations yet: they are saved as you chat in the app")
    for c in conversations:
        print(f"{c.id[:ID_CHARS]}\t{c.updated_at[:16].replace('T', ' ')}\t{c.turns} turns\t{c.title}")
    return 0


def _states(settings: Settings, turns: list[SavedTurn]) -> dict[str, SourceState]:
    """Which sources' documents were since replaced or deleted; none marked (with a note) if the store cannot open."""
    if not any(t.sources for t in turns):
        return {}
    if not settings.uses_chroma_server and not settings.chroma_path.exists():
        print(f"note: no document store at {settings.chroma_path}, so sources are not checked against it",
              file=sys.stderr)
        return {}
    from .retrieval.embeddings import DeferredBiEncoder
    from .retrieval.store import Store

    try:
        store = Store(settings, DeferredBiEncoder(settings))  # records only: the model is not loaded
    except RagError as exc:
        print(f"note: sources not checked against the store: {exc}", file=sys.stderr)
        return {}
    try:
        return source_states(store, turns)
    finally:
        store.close()
